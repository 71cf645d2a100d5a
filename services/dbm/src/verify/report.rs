//! What a comparison found: the tables compared and every difference, each naming the
//! table, the servers and, for a chunk, its number and key range.

use std::fmt;

use super::sql;

/// One table compared on both servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    pub schema: String,
    pub table: String,
    /// Rows on the reference.
    pub rows: u64,
    /// Chunks checksummed: 1 for a table without a usable key.
    pub chunks: u64,
}

/// A difference between the reference and the other server. `reference` and `other`
/// are the servers' endpoints (`db1 (127.0.0.1:3307)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// On the reference, not on `on` (the other server).
    MissingTable {
        schema: String,
        table: String,
        on: String,
    },
    /// On `on` (the other server) only.
    ExtraTable {
        schema: String,
        table: String,
        on: String,
    },
    /// The columns (names, in order) differ; the rows were not compared.
    Columns {
        schema: String,
        table: String,
        reference: String,
        reference_columns: Vec<String>,
        other: String,
        other_columns: Vec<String>,
    },
    /// The table's rows, summed over its chunks.
    RowCount {
        schema: String,
        table: String,
        reference: String,
        reference_rows: u64,
        other: String,
        other_rows: u64,
    },
    /// A chunk whose row count or checksum differs: the rows whose `key` is above
    /// `lower` and at most `upper` (`None`: open on that side), bounds as SQL literals.
    /// A table without a key is one chunk with an empty `key`.
    Chunk {
        schema: String,
        table: String,
        /// The chunk's number in key order, counting from 1.
        index: u64,
        key: Vec<String>,
        lower: Option<String>,
        upper: Option<String>,
        reference: String,
        reference_rows: u64,
        other: String,
        other_rows: u64,
    },
    /// More chunks of the table differ than are listed one by one.
    MoreChunks {
        schema: String,
        table: String,
        count: u64,
    },
}

impl Mismatch {
    /// The table: `(schema, table)`.
    pub fn table(&self) -> (&str, &str) {
        match self {
            Mismatch::MissingTable { schema, table, .. }
            | Mismatch::ExtraTable { schema, table, .. }
            | Mismatch::Columns { schema, table, .. }
            | Mismatch::RowCount { schema, table, .. }
            | Mismatch::Chunk { schema, table, .. }
            | Mismatch::MoreChunks { schema, table, .. } => (schema, table),
        }
    }
}

/// `100 < `id` <= 200`, `` `id` > 300 ``, `(1, 'a') < (`a`, `b`) <= (9, 'z')`.
fn range_text(key: &[String], lower: Option<&str>, upper: Option<&str>) -> String {
    if key.is_empty() {
        return "the whole table: it has no key".to_owned();
    }
    let key = sql::key_text(key);
    match (lower, upper) {
        (None, None) => format!("every {key}"),
        (None, Some(upper)) => format!("{key} <= {upper}"),
        (Some(lower), None) => format!("{key} > {lower}"),
        (Some(lower), Some(upper)) => format!("{lower} < {key} <= {upper}"),
    }
}

/// `` `a`, `b` ``, or `none`.
fn columns_text(columns: &[String]) -> String {
    if columns.is_empty() {
        return "none".to_owned();
    }
    columns
        .iter()
        .map(|c| sql::quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (schema, table) = self.table();
        let name = sql::table(schema, table);
        match self {
            Mismatch::MissingTable { on, .. } => write!(f, "{name} is missing on {on}"),
            Mismatch::ExtraTable { on, .. } => write!(f, "{name} exists only on {on}"),
            Mismatch::Columns {
                reference,
                reference_columns,
                other,
                other_columns,
                ..
            } => write!(
                f,
                "{name} has the columns {} on {reference} but {} on {other}; its rows were \
                 not compared",
                columns_text(reference_columns),
                columns_text(other_columns)
            ),
            Mismatch::RowCount {
                reference,
                reference_rows,
                other,
                other_rows,
                ..
            } => write!(
                f,
                "{name} has {reference_rows} rows on {reference} but {other_rows} on {other}"
            ),
            Mismatch::Chunk {
                index,
                key,
                lower,
                upper,
                reference,
                reference_rows,
                other,
                other_rows,
                ..
            } => {
                write!(
                    f,
                    "{name} chunk {index} ({}): {reference_rows} rows on {reference}, ",
                    range_text(key, lower.as_deref(), upper.as_deref())
                )?;
                if reference_rows == other_rows {
                    write!(f, "as many on {other} but with other contents")
                } else {
                    write!(f, "{other_rows} on {other}")
                }
            }
            Mismatch::MoreChunks { count, .. } => {
                write!(f, "{name}: {count} more chunks differ (not listed)")
            }
        }
    }
}

/// The result of [`super::compare`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// The tables on both servers, in (schema, table) order.
    pub tables: Vec<TableSummary>,
    pub mismatches: Vec<Mismatch>,
}

impl Comparison {
    /// Whether the two servers hold the same tables with the same rows.
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// Rows compared, counted on the reference.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn chunks(&self) -> u64 {
        self.tables.iter().map(|t| t.chunks).sum()
    }
}

/// `3 tables, 1200 rows in 14 chunks compared: equal`, or `...: 2 mismatches` and one
/// line per mismatch.
impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tables, {} rows in {} chunks compared: ",
            self.tables.len(),
            self.rows(),
            self.chunks()
        )?;
        match self.mismatches.len() {
            0 => write!(f, "equal"),
            1 => write!(f, "1 mismatch"),
            n => write!(f, "{n} mismatches"),
        }?;
        for mismatch in &self.mismatches {
            write!(f, "\n  {mismatch}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(key: &[&str], lower: Option<&str>, upper: Option<&str>, other_rows: u64) -> Mismatch {
        Mismatch::Chunk {
            schema: "app".into(),
            table: "t".into(),
            index: 3,
            key: key.iter().map(|s| (*s).to_owned()).collect(),
            lower: lower.map(str::to_owned),
            upper: upper.map(str::to_owned),
            reference: "db0 (127.0.0.1:3306)".into(),
            reference_rows: 100,
            other: "db1 (127.0.0.1:3307)".into(),
            other_rows,
        }
    }

    #[test]
    fn a_chunk_names_the_table_its_number_and_its_key_range() {
        assert_eq!(
            chunk(&["id"], Some("200"), Some("300"), 100).to_string(),
            "`app`.`t` chunk 3 (200 < `id` <= 300): 100 rows on db0 (127.0.0.1:3306), as many \
             on db1 (127.0.0.1:3307) but with other contents"
        );
        assert_eq!(
            chunk(&["a", "b"], None, Some("(5, 'k1')"), 99).to_string(),
            "`app`.`t` chunk 3 ((`a`, `b`) <= (5, 'k1')): 100 rows on db0 (127.0.0.1:3306), 99 \
             on db1 (127.0.0.1:3307)"
        );
        assert!(
            chunk(&["id"], Some("300"), None, 101)
                .to_string()
                .contains("(`id` > 300)")
        );
        assert!(
            chunk(&[], None, None, 1)
                .to_string()
                .contains("(the whole table: it has no key)")
        );
    }

    #[test]
    fn the_summary_counts_and_lists_every_mismatch() {
        let mut c = Comparison {
            tables: vec![
                TableSummary {
                    schema: "a".into(),
                    table: "x".into(),
                    rows: 1000,
                    chunks: 11,
                },
                TableSummary {
                    schema: "b".into(),
                    table: "y".into(),
                    rows: 0,
                    chunks: 1,
                },
            ],
            mismatches: Vec::new(),
        };
        assert!(c.ok());
        assert_eq!(
            c.to_string(),
            "2 tables, 1000 rows in 12 chunks compared: equal"
        );
        c.mismatches.push(Mismatch::MissingTable {
            schema: "we`ird".into(),
            table: "t".into(),
            on: "db2 (h:1)".into(),
        });
        c.mismatches.push(Mismatch::RowCount {
            schema: "a".into(),
            table: "x".into(),
            reference: "db0 (h:0)".into(),
            reference_rows: 1000,
            other: "db2 (h:1)".into(),
            other_rows: 999,
        });
        assert!(!c.ok());
        assert_eq!(
            c.to_string(),
            "2 tables, 1000 rows in 12 chunks compared: 2 mismatches\n  \
             `we``ird`.`t` is missing on db2 (h:1)\n  \
             `a`.`x` has 1000 rows on db0 (h:0) but 999 on db2 (h:1)"
        );
        assert_eq!(c.mismatches[0].table(), ("we`ird", "t"));
    }
}
