//! Well-known XDM schema identifiers.

/// The profile union schema: every export target dataset uses it.
pub const PROFILE_UNION_SCHEMA_ID: &str = "https://ns.adobe.com/xdm/context/profile__union";
/// The XDM Individual Profile class.
pub const PROFILE_CLASS_ID: &str = "https://ns.adobe.com/xdm/context/profile";
/// The XDM ExperienceEvent class.
pub const EXPERIENCE_EVENT_CLASS_ID: &str = "https://ns.adobe.com/xdm/context/experienceevent";
/// The content type AEP clients send with a `schemaRef`.
pub const SCHEMA_CONTENT_TYPE: &str = "application/vnd.adobe.xed+json;version=1";
/// The name UPS gives the XDM Individual Profile class (`schema.name` of merge policies and
/// export jobs). It is the only class merge policies can be made for.
pub const PROFILE_SCHEMA_NAME: &str = "_xdm.context.profile";
