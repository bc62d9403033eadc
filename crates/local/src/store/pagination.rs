//! WorkOS cursor pagination over any table whose rows sort by a text `id`.

use dsync_core::ports::{Order, Page, PageRequest};
use rusqlite::types::Value;

/// The SQL pieces of one page query and how to read its result.
pub struct PageQuery {
    /// Extra condition on `id`, starting with ` AND`, or empty.
    pub condition: String,
    /// `ASC` or `DESC`: the order rows are fetched in.
    pub fetch_order: &'static str,
    /// Rows to fetch: one more than the page, to learn whether more exist.
    pub fetch_limit: i64,
    /// The cursor value bound to the condition, when there is one.
    pub cursor: Option<Value>,
    /// True when rows were fetched backwards (a `before` cursor) and must be
    /// reversed into the requested order.
    backwards: bool,
    limit: usize,
    had_after: bool,
}

/// Builds the page query for `page` over the column `id_column`.
///
/// `after` is exclusive and moves forward in the requested order; `before`
/// moves backward; `after` wins when both are given.
pub fn page_query(id_column: &str, page: &PageRequest) -> PageQuery {
    let limit = page.limit.clamp(1, 100);
    let ascending = page.order == Order::Asc;

    let (condition, fetch_ascending, backwards, cursor, had_after) =
        if let Some(after) = &page.after {
            let comparison = if ascending { ">" } else { "<" };
            (
                format!(" AND {id_column} {comparison} ?"),
                ascending,
                false,
                Some(after.clone()),
                true,
            )
        } else if let Some(before) = &page.before {
            let comparison = if ascending { "<" } else { ">" };
            (
                format!(" AND {id_column} {comparison} ?"),
                !ascending,
                true,
                Some(before.clone()),
                false,
            )
        } else {
            (String::new(), ascending, false, None, false)
        };

    PageQuery {
        condition,
        fetch_order: if fetch_ascending { "ASC" } else { "DESC" },
        fetch_limit: limit as i64 + 1,
        cursor: cursor.map(Value::Text),
        backwards,
        limit,
        had_after,
    }
}

impl PageQuery {
    /// Turns the fetched rows (in fetch order) into a page with cursors.
    pub fn finish<T>(&self, mut rows: Vec<T>, id_of: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);

        if self.backwards {
            rows.reverse();
            // Fetched backwards: `more` means more rows before this page, and
            // the `before` cursor itself proves rows exist after it.
            let before = if more { rows.first().map(&id_of) } else { None };
            let after = rows.last().map(&id_of);
            return Page {
                data: rows,
                before,
                after,
            };
        }

        let after = if more { rows.last().map(&id_of) } else { None };
        let before = if self.had_after {
            rows.first().map(&id_of)
        } else {
            None
        };
        Page {
            data: rows,
            before,
            after,
        }
    }
}
