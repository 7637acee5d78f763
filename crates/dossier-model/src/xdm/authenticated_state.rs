//! `authenticatedState`: how sure the source was of an identity when it sent it, one of the three
//! values XDM's identityMap allows. Kept per identity so merged profiles give it back.

use serde::{Deserialize, Serialize};

/// The state of one `identityMap` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr)]
#[serde(rename_all = "camelCase")]
#[strum(serialize_all = "camelCase")]
pub enum AuthenticatedState {
    Authenticated,
    Ambiguous,
    LoggedOut,
}

impl AuthenticatedState {
    /// Every state, in the order XDM lists them.
    pub const ALL: [Self; 3] = [Self::Ambiguous, Self::Authenticated, Self::LoggedOut];

    /// The state as XDM spells it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The state spelled `text`, exactly as XDM spells it; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_serde_agree_on_every_spelling() {
        for state in AuthenticatedState::ALL {
            assert_eq!(AuthenticatedState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert_eq!(AuthenticatedState::parse("LoggedOut"), None);
    }
}
