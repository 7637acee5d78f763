//! The words generated records are made of: names, places, products, pages and browsers.
//!
//! Lists are fixed in the source (no files, no network) so that output depends only on the seed
//! and this crate's version. Domains are the ones reserved for examples, so no generated address
//! can reach a real mailbox.

/// (first name, gender as XDM writes it)
pub const FIRST_NAMES: &[(&str, &str)] = &[
    ("Olivia", "female"),
    ("Emma", "female"),
    ("Ava", "female"),
    ("Sophia", "female"),
    ("Isabella", "female"),
    ("Mia", "female"),
    ("Amelia", "female"),
    ("Harper", "female"),
    ("Evelyn", "female"),
    ("Abigail", "female"),
    ("Emily", "female"),
    ("Elena", "female"),
    ("Lucía", "female"),
    ("Chloé", "female"),
    ("Hannah", "female"),
    ("Aisha", "female"),
    ("Mei", "female"),
    ("Priya", "female"),
    ("Sofia", "female"),
    ("Grace", "female"),
    ("Zoe", "female"),
    ("Nora", "female"),
    ("Leah", "female"),
    ("Maya", "female"),
    ("Liam", "male"),
    ("Noah", "male"),
    ("Oliver", "male"),
    ("Elijah", "male"),
    ("James", "male"),
    ("William", "male"),
    ("Benjamin", "male"),
    ("Lucas", "male"),
    ("Henry", "male"),
    ("Alexander", "male"),
    ("Mateo", "male"),
    ("Daniel", "male"),
    ("Michael", "male"),
    ("Ethan", "male"),
    ("Jacob", "male"),
    ("Logan", "male"),
    ("Jackson", "male"),
    ("Samuel", "male"),
    ("David", "male"),
    ("Omar", "male"),
    ("Wei", "male"),
    ("Arjun", "male"),
    ("Jonas", "male"),
    ("Hugo", "male"),
    ("Alex", "not_specified"),
    ("Sam", "not_specified"),
    ("Robin", "not_specified"),
    ("Taylor", "not_specified"),
];

pub const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Müller",
    "Schmidt",
    "Dubois",
    "Rossi",
    "Kowalski",
    "Novak",
    "Tanaka",
    "Kim",
    "Patel",
    "O'Brien",
];

pub const EMAIL_DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];

pub const STREET_NAMES: &[&str] = &[
    "Main St",
    "Oak Ave",
    "Maple St",
    "Cedar Ln",
    "Pine St",
    "Elm St",
    "Washington Ave",
    "Lake Dr",
    "Hill Rd",
    "Park Ave",
    "Sunset Blvd",
    "River Rd",
    "Church St",
    "Highland Ave",
    "Mill Rd",
    "Forest Dr",
];

/// A place people live: (city, state or province, postal code prefix).
#[derive(Debug, PartialEq)]
pub struct Place {
    pub city: &'static str,
    pub state: &'static str,
    pub postal_prefix: &'static str,
}

/// A country with its places and weight in the population.
#[derive(Debug, PartialEq)]
pub struct Country {
    pub name: &'static str,
    pub code: &'static str,
    pub phone_prefix: &'static str,
    pub places: &'static [Place],
}

const fn place(city: &'static str, state: &'static str, postal_prefix: &'static str) -> Place {
    Place {
        city,
        state,
        postal_prefix,
    }
}

pub const COUNTRIES: &[(Country, u32)] = &[
    (
        Country {
            name: "United States",
            code: "US",
            phone_prefix: "+1",
            places: &[
                place("San Jose", "CA", "951"),
                place("San Francisco", "CA", "941"),
                place("Los Angeles", "CA", "900"),
                place("Seattle", "WA", "981"),
                place("Portland", "OR", "972"),
                place("Denver", "CO", "802"),
                place("Salt Lake City", "UT", "841"),
                place("Austin", "TX", "787"),
                place("Dallas", "TX", "752"),
                place("Chicago", "IL", "606"),
                place("Minneapolis", "MN", "554"),
                place("Atlanta", "GA", "303"),
                place("Miami", "FL", "331"),
                place("Boston", "MA", "021"),
                place("New York", "NY", "100"),
                place("Philadelphia", "PA", "191"),
            ],
        },
        80,
    ),
    (
        Country {
            name: "Canada",
            code: "CA",
            phone_prefix: "+1",
            places: &[
                place("Toronto", "ON", "M5V"),
                place("Vancouver", "BC", "V6B"),
                place("Montréal", "QC", "H2X"),
            ],
        },
        7,
    ),
    (
        Country {
            name: "United Kingdom",
            code: "GB",
            phone_prefix: "+44",
            places: &[place("London", "England", "SW1"), place("Manchester", "England", "M1")],
        },
        6,
    ),
    (
        Country {
            name: "Germany",
            code: "DE",
            phone_prefix: "+49",
            places: &[place("Berlin", "BE", "101"), place("München", "BY", "803")],
        },
        4,
    ),
    (
        Country {
            name: "France",
            code: "FR",
            phone_prefix: "+33",
            places: &[
                place("Paris", "Île-de-France", "750"),
                place("Lyon", "Auvergne-Rhône-Alpes", "690"),
            ],
        },
        3,
    ),
];

/// A product of the shop: SKU, name, unit price in the shop's currency (USD).
#[derive(Debug, PartialEq)]
pub struct Product {
    pub sku: &'static str,
    pub name: &'static str,
    pub price: f64,
    pub category: &'static str,
}

const fn product(sku: &'static str, name: &'static str, price: f64, category: &'static str) -> Product {
    Product {
        sku,
        name,
        price,
        category,
    }
}

pub const PRODUCTS: &[Product] = &[
    product("OUT-1001", "Trail Running Shoes", 129.99, "outdoor"),
    product("OUT-1002", "Lightweight Rain Jacket", 89.5, "outdoor"),
    product("OUT-1003", "Two-Person Tent", 249.0, "outdoor"),
    product("OUT-1004", "Down Sleeping Bag", 199.95, "outdoor"),
    product("OUT-1005", "Hydration Pack 2L", 54.0, "outdoor"),
    product("OUT-1006", "Trekking Poles", 69.99, "outdoor"),
    product("OUT-1007", "Headlamp 400lm", 34.95, "outdoor"),
    product("OUT-1008", "Insulated Water Bottle", 24.99, "outdoor"),
    product("APP-2001", "Merino Wool T-Shirt", 59.0, "apparel"),
    product("APP-2002", "Fleece Pullover", 79.0, "apparel"),
    product("APP-2003", "Hiking Socks 3-Pack", 19.99, "apparel"),
    product("APP-2004", "Softshell Pants", 99.0, "apparel"),
    product("APP-2005", "Sun Hat", 29.5, "apparel"),
    product("APP-2006", "Base Layer Leggings", 49.99, "apparel"),
    product("ELE-3001", "GPS Sport Watch", 299.99, "electronics"),
    product("ELE-3002", "Wireless Earbuds", 149.0, "electronics"),
    product("ELE-3003", "Solar Power Bank", 45.99, "electronics"),
    product("ELE-3004", "Action Camera", 349.0, "electronics"),
    product("HOM-4001", "Camping Cookware Set", 64.95, "home"),
    product("HOM-4002", "Portable Coffee Maker", 39.99, "home"),
    product("HOM-4003", "Folding Camp Chair", 44.0, "home"),
    product("HOM-4004", "Picnic Blanket", 27.5, "home"),
    product("BIK-5001", "Bike Helmet", 74.99, "cycling"),
    product("BIK-5002", "Cycling Gloves", 22.0, "cycling"),
    product("BIK-5003", "Bike Repair Kit", 31.95, "cycling"),
];

/// The preference tags a CRM keeps; product categories plus a few interests.
pub const PREFERENCES: &[&str] = &[
    "outdoor",
    "apparel",
    "electronics",
    "home",
    "cycling",
    "running",
    "sustainability",
    "sales",
    "new-arrivals",
];

/// A page of the shop's site: (name, path, site section).
pub const PAGES: &[(&str, &str, &str)] = &[
    ("Home", "/", "home"),
    ("Outdoor", "/c/outdoor", "catalog"),
    ("Apparel", "/c/apparel", "catalog"),
    ("Electronics", "/c/electronics", "catalog"),
    ("Home & Camp", "/c/home", "catalog"),
    ("Cycling", "/c/cycling", "catalog"),
    ("Search results", "/search", "search"),
    ("Sale", "/sale", "promotions"),
    ("Store locator", "/stores", "service"),
    ("My account", "/account", "account"),
    ("Help center", "/help", "service"),
    ("Blog: trail guides", "/blog/trail-guides", "content"),
];

pub const SITE: &str = "https://shop.example.com";

/// Where visitors come from: (referrer URL, AEP referrer type), with weights.
pub const REFERRERS: &[((&str, &str), u32)] = &[
    (("https://www.search.example/", "search_engine"), 45),
    (("https://social.example/", "social"), 20),
    (("https://mail.example.com/", "email"), 15),
    (("https://news.example.org/outdoors", "external"), 20),
];

/// A browser family with the versions seen in the period and how common it is.
#[derive(Debug, PartialEq)]
pub struct Browser {
    pub name: &'static str,
    pub vendor: &'static str,
    pub versions: &'static [&'static str],
    pub operating_systems: &'static [&'static str],
}

pub const BROWSERS: &[(Browser, u32)] = &[
    (
        Browser {
            name: "Chrome",
            vendor: "Google",
            versions: &["76.0.3809.132", "77.0.3865.90", "77.0.3865.120", "78.0.3904.70"],
            operating_systems: &["Windows", "macOS", "Android", "Linux"],
        },
        60,
    ),
    (
        Browser {
            name: "Safari",
            vendor: "Apple",
            versions: &["12.1.2", "13.0", "13.0.1"],
            operating_systems: &["iOS", "macOS"],
        },
        22,
    ),
    (
        Browser {
            name: "Firefox",
            vendor: "Mozilla",
            versions: &["68.0", "69.0", "69.0.1"],
            operating_systems: &["Windows", "macOS", "Linux"],
        },
        10,
    ),
    (
        Browser {
            name: "Edge",
            vendor: "Microsoft",
            versions: &["18.18362", "44.18362.1.0"],
            operating_systems: &["Windows"],
        },
        8,
    ),
];

pub const STORES: &[&str] = &[
    "STORE-SJC-01",
    "STORE-SFO-02",
    "STORE-SEA-01",
    "STORE-DEN-01",
    "STORE-CHI-03",
    "STORE-NYC-05",
    "STORE-BOS-01",
    "STORE-ATL-02",
    "STORE-YYZ-01",
    "STORE-LON-01",
    "ONLINE",
];
