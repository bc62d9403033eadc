//! Synthetic HR exports for the check and plan benchmarks.
//!
//! [`generate`] writes a `before/` and an `after/` folder, each with
//! `users.csv`, `groups.csv` and `user_groups.csv`. Every value is a pure
//! function of the seed and the row number, so the same options always write
//! the same bytes, and `after/` differs from `before/` in a chosen share of
//! users: half of them change a field, a quarter leave and a quarter join.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Users in `before/`.
    pub users: u64,
    pub groups: u64,
    /// Membership rows in `before/`; spread evenly over the users.
    pub memberships: u64,
    /// Share of users that differ between `before/` and `after/`, 0.0 to 1.0.
    pub change_rate: f64,
    pub seed: u64,
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenSummary {
    pub before_users: u64,
    pub after_users: u64,
    pub updated: u64,
    pub deleted: u64,
    pub created: u64,
    pub before_memberships: u64,
    pub after_memberships: u64,
}

const FIRST_NAMES: &[&str] = &[
    "Amara", "Bjorn", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kaia",
    "Lucan", "Mireille", "Nandi", "Oskar", "Priya", "Quentin", "Rosalind", "Saoirse", "Tariq",
    "Ulla", "Vikram", "Wren", "Xiomara", "Yusuf", "Zofia", "Renée", "Søren", "José", "Łucja",
];
const LAST_NAMES: &[&str] = &[
    "Abernathy",
    "Brannigan",
    "Castellanos",
    "Drummond",
    "Eklund",
    "Fairweather",
    "Gallagher",
    "Haddad",
    "Iwasaki",
    "Jovanovic",
    "Kowalczyk",
    "Lindgren",
    "Mbeki",
    "Nakamura",
    "O'Donnell",
    "Pereira",
    "Quiroga",
    "Rasmussen",
    "Szabo",
    "Takahashi",
    "Umarov",
    "Varga",
    "Whitfield",
    "Xu",
    "Yilmaz",
    "Zimmermann",
    "Müller",
    "Ødegård",
];
const JOB_TITLES: &[&str] = &[
    "Software Engineer",
    "Senior Software Engineer",
    "Account Executive",
    "Customer Success Manager",
    "Payroll Specialist",
    "Warehouse Associate",
    "Data Analyst",
    "Product Manager",
    "Recruiter",
    "Site Reliability Engineer",
    "Financial Controller",
    "Legal Counsel",
    "Office Manager",
    "Designer, Brand",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Customer Success",
    "Finance",
    "Operations",
    "People",
    "Legal",
    "Marketing",
    "Logistics",
    "Research & Development",
];
const EMPLOYEE_TYPES: &[&str] = &["Full-time", "Part-time", "Contractor", "Intern"];
const CITIES: &[(&str, &str)] = &[
    ("Lisbon", "PT"),
    ("Rotterdam", "NL"),
    ("Kraków", "PL"),
    ("Austin", "US"),
    ("Toronto", "CA"),
    ("Osaka", "JP"),
    ("Nairobi", "KE"),
    ("Melbourne", "AU"),
];

/// The `users.csv` header: the required columns, common optional ones and `state`.
pub const USERS_HEADER: &str = "user_id,first_name,last_name,email,username,job_title,employee_type,employment_start_date,department_name,manager_id,work_address_locality,work_address_country,cost_center_name,state";

/// SplitMix64 over the seed, a row number and a field tag: a cheap, stable
/// source of per-field randomness that needs no generator state.
fn mix(seed: u64, row: u64, tag: u64) -> u64 {
    let mut z =
        seed ^ row.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tag.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<'a>(list: &[&'a str], value: u64) -> &'a str {
    list[(value % list.len() as u64) as usize]
}

/// How a `before/` user differs in `after/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Same,
    /// A new job title and department, and a move to another group.
    Updated,
    Deleted,
}

struct Generator {
    options: GenOptions,
    /// Users in `before/` are rows `0..users`; new users in `after/` follow them.
    created: u64,
    memberships_per_user: u64,
}

impl Generator {
    fn new(options: GenOptions) -> Self {
        let created = (options.users as f64 * options.change_rate / 4.0).round() as u64;
        let memberships_per_user = if options.users == 0 {
            0
        } else {
            options
                .memberships
                .div_ceil(options.users)
                .min(options.groups)
        };
        Self {
            options,
            created,
            memberships_per_user,
        }
    }

    fn fate(&self, row: u64) -> Fate {
        if row >= self.options.users {
            return Fate::Same;
        }
        let draw = mix(self.options.seed, row, 1) as f64 / u64::MAX as f64;
        if draw >= self.options.change_rate {
            return Fate::Same;
        }
        // Of the changed users, a quarter leave; the rest change a field.
        match mix(self.options.seed, row, 2) % 4 {
            0 => Fate::Deleted,
            _ => Fate::Updated,
        }
    }

    fn user_id(row: u64) -> String {
        format!("{:08}", row + 1)
    }

    fn write_user(&self, out: &mut impl Write, row: u64, updated: bool) -> io::Result<()> {
        let seed = self.options.seed;
        let first = pick(FIRST_NAMES, mix(seed, row, 10));
        let last = pick(LAST_NAMES, mix(seed, row, 11));
        let id = Self::user_id(row);
        let local = format!("{}.{}.{}", ascii_word(first), ascii_word(last), row + 1);
        let variant = u64::from(updated);
        let title = pick(JOB_TITLES, mix(seed, row, 12) + variant);
        let department = pick(DEPARTMENTS, mix(seed, row, 13) + variant);
        let employee_type = pick(EMPLOYEE_TYPES, mix(seed, row, 14) % 8 / 5);
        let start_year = 2005 + mix(seed, row, 15) % 21;
        let start_month = 1 + mix(seed, row, 16) % 12;
        let start_day = 1 + mix(seed, row, 17) % 28;
        let manager = if row < 50 {
            String::new()
        } else {
            Self::user_id(mix(seed, row, 18) % 50)
        };
        let (city, country) = CITIES[(mix(seed, row, 19) % CITIES.len() as u64) as usize];
        let cost_center = format!("CC-{:04}", mix(seed, row, 20) % 400);
        let state = if mix(seed, row, 21) % 200 == 0 {
            "on leave"
        } else {
            "active"
        };

        writeln!(
            out,
            "{id},{first},{},{local}@example.com,{local},{},{employee_type},{start_year}-{start_month:02}-{start_day:02},{},{manager},{city},{country},{cost_center},{state}",
            csv_field(last),
            csv_field(title),
            csv_field(department),
        )
    }

    fn group_name(&self, index: u64) -> String {
        format!("{} {:04}", pick(DEPARTMENTS, index), index)
    }

    /// The groups of one user: a run of distinct groups from a per-user start.
    /// Rows of `before/` fill `memberships` rows in order, so the last ones
    /// may get fewer; new users get the full run.
    fn groups_of(&self, row: u64, updated: bool) -> impl Iterator<Item = u64> + '_ {
        let groups = self.options.groups.max(1);
        let start = mix(self.options.seed, row, 30) % groups;
        let per_user = self.memberships_per_user;
        let slots = if row < self.options.users {
            per_user.min(self.options.memberships.saturating_sub(row * per_user))
        } else {
            per_user
        };
        // An updated user leaves its first group for the one after its run.
        let shift = u64::from(updated);
        (0..slots).map(move |slot| (start + slot + shift) % groups)
    }

    fn write_folder(&self, folder: &Path, after: bool, summary: &mut GenSummary) -> io::Result<()> {
        fs::create_dir_all(folder)?;
        let rows = if after {
            self.options.users + self.created
        } else {
            self.options.users
        };

        let mut users = BufWriter::with_capacity(1 << 20, File::create(folder.join("users.csv"))?);
        let mut memberships =
            BufWriter::with_capacity(1 << 20, File::create(folder.join("user_groups.csv"))?);
        writeln!(users, "{USERS_HEADER}")?;
        writeln!(memberships, "group_name,user_id")?;

        let mut user_count = 0;
        let mut membership_count = 0;
        for row in 0..rows {
            let fate = if after { self.fate(row) } else { Fate::Same };
            if fate == Fate::Deleted {
                summary.deleted += 1;
                continue;
            }
            if after && fate == Fate::Updated {
                summary.updated += 1;
            }
            if after && row >= self.options.users {
                summary.created += 1;
            }
            if !after && row >= self.options.users {
                continue;
            }

            self.write_user(&mut users, row, fate == Fate::Updated)?;
            user_count += 1;

            let id = Self::user_id(row);
            for group in self.groups_of(row, fate == Fate::Updated) {
                writeln!(memberships, "{},{id}", self.group_name(group))?;
                membership_count += 1;
            }
        }
        users.flush()?;
        memberships.flush()?;

        let mut groups = BufWriter::new(File::create(folder.join("groups.csv"))?);
        writeln!(groups, "group_name,description,cost_center")?;
        for index in 0..self.options.groups {
            writeln!(
                groups,
                "{},{} team {},CC-{:04}",
                self.group_name(index),
                pick(DEPARTMENTS, index),
                index,
                index % 400
            )?;
        }
        groups.flush()?;

        if after {
            summary.after_users = user_count;
            summary.after_memberships = membership_count;
        } else {
            summary.before_users = user_count;
            summary.before_memberships = membership_count;
        }
        Ok(())
    }
}

/// Writes `out/before/` and `out/after/`.
pub fn generate(options: &GenOptions, out: &Path) -> io::Result<GenSummary> {
    let generator = Generator::new(options.clone());
    let mut summary = GenSummary::default();
    generator.write_folder(&out.join("before"), false, &mut summary)?;
    generator.write_folder(&out.join("after"), true, &mut summary)?;
    Ok(summary)
}

/// Lowercase ASCII letters of a name, for e-mail addresses.
fn ascii_word(name: &str) -> String {
    let folded: String = name
        .chars()
        .map(|c| match c {
            'é' | 'è' => 'e',
            'ø' | 'Ø' | 'ó' => 'o',
            'ü' => 'u',
            'Ł' | 'ł' => 'l',
            other => other,
        })
        .filter(|c| c.is_ascii_alphabetic())
        .collect();
    folded.to_ascii_lowercase()
}

/// Quotes a value when it contains a comma or a quote (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// Peak resident memory of this process in bytes (`VmHWM`), when Linux reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// CPU time this process has used, user plus system, in seconds, from
/// `/proc/self/stat` (fields 14 and 15, in clock ticks of 1/100 s, the
/// Linux default `USER_HZ`).
pub fn cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; fields after it are space-separated.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// Current resident memory of this process in bytes (`VmRSS`).
pub fn current_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> GenOptions {
        GenOptions {
            users: 2_000,
            groups: 40,
            memberships: 5_000,
            change_rate: 0.04,
            seed: 11,
        }
    }

    #[test]
    fn generate_is_repeatable() {
        let one = std::env::temp_dir().join(format!("dsync-gen-one-{}", std::process::id()));
        let two = std::env::temp_dir().join(format!("dsync-gen-two-{}", std::process::id()));

        let first = generate(&options(), &one).unwrap();
        let second = generate(&options(), &two).unwrap();

        assert_eq!(first, second);
        for name in [
            "before/users.csv",
            "after/users.csv",
            "after/user_groups.csv",
            "before/groups.csv",
        ] {
            assert_eq!(
                fs::read(one.join(name)).unwrap(),
                fs::read(two.join(name)).unwrap(),
                "{name}"
            );
        }
        fs::remove_dir_all(one).unwrap();
        fs::remove_dir_all(two).unwrap();
    }

    #[test]
    fn generate_changes_about_the_rate() {
        let out = std::env::temp_dir().join(format!("dsync-gen-rate-{}", std::process::id()));

        let summary = generate(&options(), &out).unwrap();

        assert_eq!(summary.before_users, 2_000);
        assert_eq!(summary.before_memberships, 5_000);
        let changed = summary.updated + summary.deleted + summary.created;
        assert!((50..=130).contains(&changed), "{summary:?}");
        assert_eq!(
            summary.after_users,
            2_000 - summary.deleted + summary.created
        );
        let lines = fs::read_to_string(out.join("after/users.csv"))
            .unwrap()
            .lines()
            .count() as u64;
        assert_eq!(lines, summary.after_users + 1);
        fs::remove_dir_all(out).unwrap();
    }
}
