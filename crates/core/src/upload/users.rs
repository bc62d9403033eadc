//! Validating `users.csv` rows into a [`UsersSnapshot`].

use crate::ids::IdpId;
use crate::model::{Attributes, UserState};
use crate::snapshot::{UserRecord, UsersSnapshot};

use super::columns::Columns;
use super::table::{FileReport, Row, RowSink};
use super::user_map::{UserMapBuilder, ValidRow};

pub(crate) const REQUIRED_USER_COLUMNS: &[&str] = &["user_id", "first_name", "last_name", "email"];

/// Maps a `state` value to a user state, case-insensitively. HR systems use
/// their own words; these are the common ones. Returns `None` for any other
/// word, which is a row error rather than a guess.
pub fn parse_user_state(value: &str) -> Option<UserState> {
    const ACTIVE: &[&str] = &["active", "on leave", "on_leave", "on-leave"];
    const INACTIVE: &[&str] = &["inactive", "terminated", "suspended", "leaver"];

    if ACTIVE.iter().any(|word| value.eq_ignore_ascii_case(word)) {
        Some(UserState::Active)
    } else if INACTIVE.iter().any(|word| value.eq_ignore_ascii_case(word)) {
        Some(UserState::Inactive)
    } else {
        None
    }
}

/// Checks that an e-mail address is plausible: exactly one `@`, a non-empty
/// local part, a domain of non-empty dot-separated labels with at least one
/// dot, and no whitespace or control characters. Deliverability is not checked.
pub fn is_valid_email(value: &str) -> bool {
    // Most addresses are ASCII, where a byte scan is enough.
    let has_space_or_control = if value.is_ascii() {
        value
            .bytes()
            .any(|byte| byte.is_ascii_whitespace() || byte.is_ascii_control())
    } else {
        value
            .chars()
            .any(|character| character.is_whitespace() || character.is_control())
    };
    if has_space_or_control {
        return false;
    }
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') {
        return false;
    }
    domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
}

#[derive(Default)]
pub(crate) struct UsersSink {
    user_id: usize,
    first_name: usize,
    last_name: usize,
    email: usize,
    state: Option<usize>,
    /// Valid rows go to the map builder. Repeated ids are resolved at the
    /// end of the file, when every copy is known.
    map: UserMapBuilder,
    snapshot: UsersSnapshot,
    pairs: Vec<usize>,
    names: Vec<std::sync::Arc<str>>,
}

impl UsersSink {
    pub(crate) fn finish(self) -> UsersSnapshot {
        self.snapshot
    }
}

impl RowSink for UsersSink {
    fn required_columns(&self) -> &'static [&'static str] {
        REQUIRED_USER_COLUMNS
    }

    fn begin(&mut self, columns: &Columns, _report: &mut FileReport) {
        let index = |name: &str| {
            columns
                .index_of(name)
                .expect("required columns were checked")
        };
        self.user_id = index("user_id");
        self.first_name = index("first_name");
        self.last_name = index("last_name");
        self.email = index("email");
        self.state = columns.index_of("state");

        self.pairs = columns.sorted_positions().to_vec();
        self.names = self
            .pairs
            .iter()
            .map(|&position| {
                columns
                    .name(position)
                    .expect("sorted positions are named")
                    .clone()
            })
            .collect();
    }

    fn row(&mut self, row: &Row<'_>, report: &mut FileReport) -> bool {
        let user_id = row.value(self.user_id);
        if user_id.is_empty() {
            report.row_error(
                row,
                Some("user_id"),
                "user_id is empty, so the row names no user and is skipped; fill in the user's id"
                    .to_owned(),
            );
            return false;
        }
        let id = IdpId::new(user_id);
        let user_id = shown_id(user_id);

        let mut valid = true;
        for (position, column) in [
            (self.first_name, "first_name"),
            (self.last_name, "last_name"),
            (self.email, "email"),
        ] {
            if row.value(position).is_empty() {
                report.row_error(
                    row,
                    Some(column),
                    format!("{column} is empty for user_id {user_id}; fill it in (the user keeps its stored data until then)"),
                );
                valid = false;
            }
        }
        let email = row.value(self.email);
        if !email.is_empty() && !is_valid_email(email) {
            report.row_error(
                row,
                Some("email"),
                format!(
                    "email for user_id {user_id} is not a valid address (expected one @, a name before it, a domain \
                     with a dot after it, and no spaces); correct it (the user keeps its stored data until then)"
                ),
            );
            valid = false;
        }

        let mut state = UserState::Active;
        if let Some(position) = self.state {
            let word = row.value(position);
            if !word.is_empty() {
                match parse_user_state(word) {
                    Some(parsed) => state = parsed,
                    None => {
                        report.row_error(
                            row,
                            Some("state"),
                            format!(
                                "state for user_id {user_id} is not a known word; use active or inactive (also \
                                 accepted: terminated, suspended, leaver, on leave)"
                            ),
                        );
                        valid = false;
                    }
                }
            }
        }

        if !valid {
            self.snapshot.held.insert(id);
            return false;
        }

        let attributes = Attributes::from_pairs(
            self.pairs
                .iter()
                .zip(&self.names)
                .map(|(&position, name)| (name.clone(), Box::from(row.value(position)))),
        );
        self.map.push(ValidRow {
            id,
            record: UserRecord { state, attributes },
            row: row.number,
            line: row.line,
        });
        true
    }

    /// Builds the user map. Every copy of a repeated id is an error and the
    /// id is held, because dsync cannot know which copy is right. A valid row
    /// whose id also appears on a row with errors is a repeat too, so an id
    /// is never both kept and held.
    fn unidentified_row(&mut self) {
        self.snapshot.unidentified_rows += 1;
    }

    fn end(&mut self, report: &mut FileReport) {
        let mut built = std::mem::take(&mut self.map).finish();

        for id in &self.snapshot.held {
            if built.users.contains_key(id) {
                built.repeated.insert(id.clone());
            }
        }

        if !built.repeated.is_empty() {
            for (id, row, line) in &built.positions {
                if built.repeated.contains(id) {
                    built.users.remove(id);
                    report.earlier_row_error(
                        *row,
                        *line,
                        Some("user_id"),
                        duplicate_message(&shown_id(id.as_str())),
                    );
                }
            }
            self.snapshot.held.extend(built.repeated);
        }

        self.snapshot.users = built.users;
    }
}

/// Most characters of an id quoted in a message. A longer id is cut, so a
/// runaway value cannot fill the report.
const MAX_SHOWN_ID_CHARS: usize = 64;

/// Returns an id as messages quote it: whole, or cut at
/// [`MAX_SHOWN_ID_CHARS`] characters with an ellipsis.
pub(crate) fn shown_id(id: &str) -> std::borrow::Cow<'_, str> {
    match id.char_indices().nth(MAX_SHOWN_ID_CHARS) {
        Some((end, _)) => format!("{}…", &id[..end]).into(),
        None => id.into(),
    }
}

fn duplicate_message(user_id: &str) -> String {
    format!(
        "user_id {user_id} appears in more than one row, so every copy is skipped and the user keeps its stored \
         data; keep exactly one row per user_id"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_words() {
        assert_eq!(parse_user_state("Active"), Some(UserState::Active));
        assert_eq!(parse_user_state("ON LEAVE"), Some(UserState::Active));
        assert_eq!(parse_user_state("terminated"), Some(UserState::Inactive));
        assert_eq!(parse_user_state("Suspended"), Some(UserState::Inactive));
        assert_eq!(parse_user_state("leaver"), Some(UserState::Inactive));
        assert_eq!(parse_user_state("INACTIVE"), Some(UserState::Inactive));
        assert_eq!(parse_user_state("retired"), None);
    }

    #[test]
    fn email_valid() {
        assert!(is_valid_email("ana.lima@example.com"));
        assert!(is_valid_email("Ana.Lima@Example.COM"));
        assert!(is_valid_email("a+tag@sub.example.co.uk"));
    }

    #[test]
    fn email_invalid() {
        assert!(!is_valid_email("ana.lima"));
        assert!(!is_valid_email("@example.com"));
        assert!(!is_valid_email("ana@localhost"));
        assert!(!is_valid_email("ana@@example.com"));
        assert!(!is_valid_email("ana@exa@mple.com"));
        assert!(!is_valid_email("ana lima@example.com"));
        assert!(!is_valid_email("ana@example..com"));
        assert!(!is_valid_email("ana@.example.com"));
        assert!(!is_valid_email("ana@example.com."));
    }
}
