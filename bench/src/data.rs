//! Deterministic synthetic leads: names, contact details, zones.

use jiff::Timestamp;

pub const FIRST: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas",
    "Mia", "Levi", "Amelia", "Ezra", "Harper", "Asher", "Evelyn", "James", "Luna", "Leo", "Camila",
    "Aiden", "Gianna", "Kai", "Aria", "Jordan", "Priya", "Wei", "Fatima", "Omar", "Chloe",
    "Daniel", "Grace", "Samuel", "Zoe", "Henry", "Layla", "Jack", "Nora", "Owen", "Riley",
    "Hannah", "Wyatt", "Lily", "Julian", "Aaliyah", "Gabriel", "Ellie", "Carter", "Stella",
    "Isaac", "Hazel", "Anthony", "Violet", "Dylan", "Aurora", "Thomas", "Savannah", "Charles",
    "Audrey",
];

pub const LAST: &[&str] = &[
    "Nguyen",
    "Patel",
    "Garcia",
    "Johnson",
    "Okafor",
    "Kim",
    "Martinez",
    "Brown",
    "Cohen",
    "Rossi",
    "Silva",
    "Walker",
    "Haddad",
    "Fischer",
    "Lopez",
    "Moreau",
    "Singh",
    "Tanaka",
    "Clarke",
    "Ortiz",
    "Smith",
    "Williams",
    "Jones",
    "Miller",
    "Davis",
    "Rodriguez",
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
    "Ramirez",
    "Lewis",
    "Robinson",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
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
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
    "Rogers",
    "Gutierrez",
    "Ortega",
    "Morgan",
    "Cooper",
    "Peterson",
    "Bailey",
    "Reed",
    "Kelly",
    "Howard",
    "Ramos",
    "Cox",
    "Ward",
    "Richardson",
    "Watson",
    "Brooks",
    "Chavez",
    "Wood",
    "James",
    "Bennett",
    "Gray",
    "Mendoza",
    "Ruiz",
    "Hughes",
    "Price",
];

pub const SOURCES: &[&str] = &[
    "zillow",
    "website",
    "open-house",
    "facebook-ads",
    "realtor.com",
    "referral",
];

/// Area codes of the bulk leads' phones. API leads use 646, which is not among them, so a
/// lead posted during the API phase never merges into a loaded one.
pub const AREAS: &[u32] = &[212, 312, 415, 512, 617, 713, 206, 305];

/// US zones for leads whose touches lie in the future.
pub const US_ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
];

/// Zones tried, in order of preference, for leads whose touches must be sendable right now.
const CANDIDATE_ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Halifax",
    "America/Sao_Paulo",
    "Atlantic/South_Georgia",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Paris",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Pacific/Noumea",
    "Pacific/Auckland",
];

/// Up to `max` zones whose local time is between 09:00 and 18:00 now: the sending window
/// (08:00-21:00) stays open for the whole benchmark, whatever the time of day it runs.
pub fn open_zones(max: usize) -> Vec<&'static str> {
    let now = Timestamp::now();
    let mut out: Vec<&'static str> = CANDIDATE_ZONES
        .iter()
        .copied()
        .filter(|z| {
            jiff::tz::TimeZone::get(z)
                .map(|tz| {
                    let h = tz.to_datetime(now).hour();
                    (9..18).contains(&h)
                })
                .unwrap_or(false)
        })
        .take(max)
        .collect();
    if out.is_empty() {
        out.push("UTC");
    }
    out
}

/// splitmix64: a cheap, well-mixed hash of an integer.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub struct Person {
    pub first: &'static str,
    pub last: &'static str,
    pub email: String,
    pub phone: String,
}

/// Lead `i` of the bulk load: names drawn from the lists, a unique email and phone.
pub fn person(i: u64) -> Person {
    let h = mix(i);
    let first = FIRST[(h % FIRST.len() as u64) as usize];
    let last = LAST[((h >> 20) % LAST.len() as u64) as usize];
    let area = AREAS[(i % AREAS.len() as u64) as usize];
    // Exchange and line: 7 digits starting at 200-0000 (a valid US exchange starts with 2-9).
    let rest = 2_000_000 + i / AREAS.len() as u64;
    Person {
        first,
        last,
        email: format!(
            "{}.{}.{i}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        phone: format!("+1{area}{rest:07}"),
    }
}
