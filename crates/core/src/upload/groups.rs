//! Validating `groups.csv` rows into a [`GroupsSnapshot`].

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ids::GroupName;
use crate::model::Attributes;
use crate::snapshot::GroupsSnapshot;

use super::columns::Columns;
use super::table::{FileReport, Row, RowSink};

pub(crate) const REQUIRED_GROUP_COLUMNS: &[&str] = &["group_name"];

#[derive(Default)]
pub(crate) struct GroupsSink {
    group_name: usize,
    /// Positions and names of the metadata columns (all but `group_name`), in name order.
    extra: Vec<(usize, Arc<str>)>,
    /// Kept groups with the row and line of their first copy.
    groups: BTreeMap<GroupName, (Attributes, u64, u64)>,
    snapshot: GroupsSnapshot,
}

impl GroupsSink {
    pub(crate) fn finish(self) -> GroupsSnapshot {
        let mut snapshot = self.snapshot;
        snapshot.groups = self
            .groups
            .into_iter()
            .map(|(name, (attributes, _, _))| (name, attributes))
            .collect();
        snapshot
    }
}

impl RowSink for GroupsSink {
    fn required_columns(&self) -> &'static [&'static str] {
        REQUIRED_GROUP_COLUMNS
    }

    fn unidentified_row(&mut self) {
        self.snapshot.unidentified_rows += 1;
    }

    fn begin(&mut self, columns: &Columns, _report: &mut FileReport) {
        self.group_name = columns
            .index_of("group_name")
            .expect("required columns were checked");
        self.extra = columns
            .sorted_positions()
            .iter()
            .filter(|&&position| position != self.group_name)
            .map(|&position| {
                (
                    position,
                    columns
                        .name(position)
                        .expect("sorted positions are named")
                        .clone(),
                )
            })
            .collect();
    }

    fn row(&mut self, row: &Row<'_>, report: &mut FileReport) -> bool {
        let name = row.value(self.group_name);
        if name.is_empty() {
            report.row_error(
                row,
                Some("group_name"),
                "group_name is empty, so the row names no group and is skipped; fill in the group's name".to_owned(),
            );
            return false;
        }
        let group = GroupName::new(name);

        // Group names are HR values, so messages point at rows instead of naming the group.
        if let Some((_, first_row, first_line)) = self.groups.remove(name) {
            let message = duplicate_message(first_row, row.number);
            report.earlier_row_error(first_row, first_line, Some("group_name"), message.clone());
            report.row_error(row, Some("group_name"), message);
            self.snapshot.held.insert(group);
            return false;
        }
        if self.snapshot.held.contains(name) {
            report.row_error(
                row,
                Some("group_name"),
                "this group_name appears in an earlier row too, so every copy is skipped and the group keeps its \
                 stored data; keep exactly one row per group"
                    .to_owned(),
            );
            return false;
        }
        let attributes = Attributes::from_pairs(
            self.extra
                .iter()
                .map(|(position, column)| (column.clone(), Box::from(row.value(*position)))),
        );
        self.groups
            .insert(group, (attributes, row.number, row.line));
        true
    }
}

fn duplicate_message(first_row: u64, second_row: u64) -> String {
    format!(
        "the same group_name is in rows {first_row} and {second_row}, so every copy is skipped and the group keeps \
         its stored data; keep exactly one row per group"
    )
}
