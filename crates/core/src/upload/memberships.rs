//! Validating `user_groups.csv` rows into a [`MembershipsSnapshot`].

use crate::ids::{GroupName, IdpId};
use crate::snapshot::{MembershipsSnapshot, UsersSnapshot};

use super::columns::Columns;
use super::table::{FileReport, Row, RowSink};
use super::ReadLimits;

pub(crate) const REQUIRED_MEMBERSHIP_COLUMNS: &[&str] = &["group_name", "user_id"];

pub(crate) struct MembershipsSink<'a> {
    group_name: usize,
    user_id: usize,
    /// The accepted users, to check that each membership names a known user.
    /// `None` when `users.csv` was absent or rejected, so no check is possible.
    users: Option<&'a UsersSnapshot>,
    /// Valid pairs in file order. The set is built once at the end, because
    /// sorting a vector and bulk-building the set is far cheaper than
    /// millions of tree inserts that each compare strings down the tree.
    pairs: Vec<(GroupName, IdpId)>,
    snapshot: MembershipsSnapshot,
}

impl<'a> MembershipsSink<'a> {
    pub(crate) fn new(users: Option<&'a UsersSnapshot>) -> Self {
        Self {
            group_name: 0,
            user_id: 0,
            users,
            pairs: Vec::new(),
            snapshot: MembershipsSnapshot::default(),
        }
    }

    pub(crate) fn finish(self) -> MembershipsSnapshot {
        self.snapshot
    }
}

/// Rows `user_groups.csv` may have per row `users.csv` may have: room for
/// directories where each user is in up to ten groups.
pub(crate) const MEMBERSHIP_ROWS_PER_USER: u64 = 10;

impl RowSink for MembershipsSink<'_> {
    fn required_columns(&self) -> &'static [&'static str] {
        REQUIRED_MEMBERSHIP_COLUMNS
    }

    fn unidentified_row(&mut self) {
        self.snapshot.unidentified_rows += 1;
    }

    fn begin(&mut self, columns: &Columns, report: &mut FileReport) {
        self.group_name = columns
            .index_of("group_name")
            .expect("required columns were checked");
        self.user_id = columns
            .index_of("user_id")
            .expect("required columns were checked");

        for name in columns.names() {
            if name != "group_name" && name != "user_id" {
                report.file_warning(format!(
                    "column {name} is ignored: user_groups.csv uses only group_name and user_id; group metadata \
                     belongs in groups.csv"
                ));
            }
        }
    }

    /// A user is in several groups, so this file may have
    /// [`MEMBERSHIP_ROWS_PER_USER`] times the rows of users.csv.
    fn max_rows(&self, limits: &ReadLimits) -> u64 {
        limits.max_rows_of(crate::report::FileKind::UserGroups)
    }

    fn row(&mut self, row: &Row<'_>, report: &mut FileReport) -> bool {
        let group_name = row.value(self.group_name);
        let user_id = row.value(self.user_id);

        if group_name.is_empty() || user_id.is_empty() {
            for (value, column) in [(group_name, "group_name"), (user_id, "user_id")] {
                if value.is_empty() {
                    report.row_error(
                        row,
                        Some(column),
                        format!("{column} is empty, so the row is skipped; fill in both group_name and user_id"),
                    );
                }
            }
            return false;
        }
        let pair = (GroupName::new(group_name), IdpId::new(user_id));

        if let Some(users) = self.users {
            let known = users.users.contains_key(user_id) || users.held.contains(user_id);
            if !known {
                report.row_error(
                    row,
                    Some("user_id"),
                    format!(
                        "user_id {} is not in users.csv, so this membership is skipped; add the user to \
                         users.csv or remove the row",
                        super::users::shown_id(user_id)
                    ),
                );
                self.snapshot.held.insert(pair);
                return false;
            }
        }

        self.pairs.push(pair);
        true
    }

    fn end(&mut self, _report: &mut FileReport) {
        // A repeated membership states the same fact twice, so collecting
        // into the set drops the copy harmlessly.
        self.snapshot.memberships = std::mem::take(&mut self.pairs).into_iter().collect();
    }
}
