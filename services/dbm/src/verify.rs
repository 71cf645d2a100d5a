//! Verification: every base table of one server compared with another, row counts and
//! chunked checksums, so that a difference is reported with its table and the key range
//! of the chunk that holds it. The migration compares db0 (frozen) with db1 and db1 with
//! db2 ([`compare`]).
//!
//! How (the method of pt-table-checksum, without its tool):
//!
//! * The base tables of both servers are listed from `information_schema`; a table on
//!   one side only is a mismatch, and so is a table whose columns differ.
//! * A table is walked along its key: the primary key, or else the first unique key
//!   whose columns are all `NOT NULL`. The reference gives the chunk boundaries, every
//!   [`Options::chunk_rows`]-th key value (`... WHERE key > ? ORDER BY key LIMIT 1
//!   OFFSET n-1`); both servers are then asked about the same ranges `(lower, upper]`,
//!   the last one open-ended so that rows beyond the reference's last key count too. A
//!   table without such a key is one chunk.
//! * Per chunk each server answers `COUNT(*)` and the sum of a 64-bit hash of every row
//!   (the first 16 hex digits of an MD5 over the row's column lengths and values, see
//!   `sql::row_hash`). A sum does not depend on the order the rows are read in, so no
//!   chunk needs an `ORDER BY`; unlike `BIT_XOR` it does not let two equal rows (possible
//!   without a key) cancel each other out. Both servers work on a chunk at once.
//! * A table's row count is the sum over its chunks; totals are compared too.
//!
//! Only `SELECT`s are sent, key values as parameters: no `SET`, no DDL, no temporary
//! table, nothing that ends a transaction. Either connection may be inside `START
//! TRANSACTION WITH CONSISTENT SNAPSHOT` (db1 as it was at the promote), and stays there.
//!
//! Rejected:
//! * `CHECKSUM TABLE`: its result depends on the row format and the server version
//!   (MySQL 5.6 changed it for temporal types), so it is not comparable across the
//!   upgrade a migration often is; and it covers the whole table, not a chunk, so a
//!   mismatch could not be located.
//! * pt-table-checksum itself: needs Perl and the Percona Toolkit on the host, and writes
//!   its results into a table on the master, to be compared on the replicas through
//!   replication; dbm compares servers that no longer replicate from each other and must
//!   not write into db0.
//! * Row constructor comparisons (`(a, b) > (?, ?)`): MariaDB 10.11 does not use an index
//!   range for them (EXPLAIN: a full index scan), which makes walking a big table
//!   quadratic; the comparison is written out column by column instead.
//!
//! Limits: FLOAT and DOUBLE are hashed as the text the server makes of them, which
//! another server version may write differently; a TIMESTAMP key's boundaries are read
//! and sent in the session's time zone, so both servers' sessions should have the same
//! one (a TIMESTAMP column's value is hashed as seconds since the epoch, independent of
//! it); MyISAM tables are outside a snapshot's consistency; sequences are not compared.

mod report;
mod sql;

use std::collections::BTreeSet;

use anyhow::{Context, bail, ensure};
use mysql_async::{Row, Value};

pub use report::{Comparison, Mismatch, TableSummary};

use crate::db::Db;
use sql::Column;

/// Differing chunks of one table listed one by one; beyond, only how many more.
pub const LISTED_CHUNKS: u64 = 20;

/// What to compare, and in what pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Rows per checksummed chunk (on the reference): a mismatch is located to this many
    /// rows. At least 1.
    pub chunk_rows: u64,
    /// The schemas to compare (none when empty); `None`: all but `mysql`,
    /// `information_schema`, `performance_schema` and `sys`.
    pub schemas: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk_rows: 10_000,
            schemas: None,
        }
    }
}

/// Compares every base table of `reference` with `other`: the same tables, the same
/// columns, the same rows in every chunk. Differences are in the result, not errors; an
/// error is a query that failed.
///
/// The caller may have put either connection inside `START TRANSACTION WITH CONSISTENT
/// SNAPSHOT`: only `SELECT`s are sent, the transaction stays open.
pub async fn compare(
    reference: &mut Db,
    other: &mut Db,
    options: &Options,
) -> anyhow::Result<Comparison> {
    ensure!(
        options.chunk_rows >= 1,
        "verify: chunk_rows must be at least 1"
    );
    let (on_reference, on_other) =
        tokio::try_join!(tables(reference, options), tables(other, options))?;
    tracing::info!(
        "comparing {} tables of {} with {}",
        on_reference.len(),
        reference.endpoint,
        other.endpoint
    );
    let mut comparison = Comparison::default();
    for (schema, table) in on_reference.union(&on_other) {
        let name = (schema.clone(), table.clone());
        let mismatches = if !on_other.contains(&name) {
            vec![Mismatch::MissingTable {
                schema: schema.clone(),
                table: table.clone(),
                on: other.endpoint.clone(),
            }]
        } else if !on_reference.contains(&name) {
            vec![Mismatch::ExtraTable {
                schema: schema.clone(),
                table: table.clone(),
                on: other.endpoint.clone(),
            }]
        } else {
            let (summary, mismatches) = compare_table(reference, other, schema, table, options)
                .await
                .with_context(|| format!("comparing {}", sql::table(schema, table)))?;
            if let Some(summary) = summary {
                tracing::info!(
                    "{}: {} rows in {} chunks compared, {}",
                    sql::table(schema, table),
                    summary.rows,
                    summary.chunks,
                    if mismatches.is_empty() {
                        "equal"
                    } else {
                        "different"
                    }
                );
                comparison.tables.push(summary);
            }
            mismatches
        };
        for mismatch in mismatches {
            tracing::warn!("{mismatch}");
            comparison.mismatches.push(mismatch);
        }
    }
    Ok(comparison)
}

/// The base tables to compare on `db`, as (schema, table).
async fn tables(db: &mut Db, options: &Options) -> anyhow::Result<BTreeSet<(String, String)>> {
    let schemas = match options.schemas.as_deref() {
        Some([]) => return Ok(BTreeSet::new()),
        Some(schemas) => schemas,
        None => &[],
    };
    let params: Vec<Value> = schemas.iter().map(|s| Value::from(s.as_str())).collect();
    let rows: Vec<(String, String)> = db
        .exec_rows(
            "listing the tables",
            &sql::list_tables(schemas.len()),
            params,
        )
        .await?;
    Ok(rows.into_iter().collect())
}

async fn columns(db: &mut Db, schema: &str, table: &str) -> anyhow::Result<Vec<Column>> {
    let rows: Vec<(String, String)> = db
        .exec_rows(
            "listing a table's columns",
            sql::LIST_COLUMNS,
            (schema, table),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, data_type)| Column { name, data_type })
        .collect())
}

/// The key chunks are walked by, on `db`; empty when the table has no usable key.
async fn key(db: &mut Db, schema: &str, table: &str) -> anyhow::Result<Vec<String>> {
    let rows: Vec<sql::IndexColumn> = db
        .exec_rows(
            "listing a table's keys",
            sql::LIST_INDEX_COLUMNS,
            (schema, table),
        )
        .await?;
    Ok(sql::choose_key(&rows).unwrap_or_default())
}

/// The next chunk's upper bound on the reference; `None` when fewer than `rows` rows
/// are left (the chunk is the last and open-ended).
async fn boundary(
    db: &mut Db,
    schema: &str,
    table: &str,
    key: &[String],
    lower: Option<&[Value]>,
    rows: u64,
) -> anyhow::Result<Option<Vec<Value>>> {
    let sql = sql::boundary(schema, table, key, lower.is_some(), rows);
    let row: Option<Row> = db
        .exec_first(
            "finding a chunk boundary",
            &sql,
            sql::bound_params(lower, None),
        )
        .await?;
    Ok(row.map(Row::unwrap))
}

/// A chunk's rows and checksum on `db`.
async fn checksum(db: &mut Db, sql: &str, params: Vec<Value>) -> anyhow::Result<(u64, String)> {
    let row: Option<(u64, String)> = db.exec_first("checksumming a chunk", sql, params).await?;
    row.with_context(|| format!("{}: no answer to a checksum", db.endpoint))
}

/// Compares one table on both servers: its summary (`None` when its columns differ and
/// its rows were not compared) and what differs.
async fn compare_table(
    reference: &mut Db,
    other: &mut Db,
    schema: &str,
    table: &str,
    options: &Options,
) -> anyhow::Result<(Option<TableSummary>, Vec<Mismatch>)> {
    let (columns, other_columns) = tokio::try_join!(
        columns(reference, schema, table),
        columns(other, schema, table)
    )?;
    let names = |columns: &[Column]| columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    if names(&columns) != names(&other_columns) {
        let mismatch = Mismatch::Columns {
            schema: schema.to_owned(),
            table: table.to_owned(),
            reference: reference.endpoint.clone(),
            reference_columns: names(&columns),
            other: other.endpoint.clone(),
            other_columns: names(&other_columns),
        };
        return Ok((None, vec![mismatch]));
    }
    let key = key(reference, schema, table).await?;

    let mut chunks = Vec::new();
    let mut differing = 0;
    let (mut reference_rows, mut other_rows) = (0, 0);
    let mut lower: Option<Vec<Value>> = None;
    let mut index = 0;
    loop {
        index += 1;
        let upper = if key.is_empty() {
            None
        } else {
            boundary(
                reference,
                schema,
                table,
                &key,
                lower.as_deref(),
                options.chunk_rows,
            )
            .await
            .with_context(|| format!("chunk {index}"))?
        };
        if upper.is_some() && upper == lower {
            bail!(
                "chunk {index}: the key {} does not advance past {}",
                sql::key_text(&key),
                sql::values_text(upper.as_deref().unwrap_or_default())
            );
        }
        let sql = sql::checksum(
            schema,
            table,
            &columns,
            &key,
            lower.is_some(),
            upper.is_some(),
        );
        let params = sql::bound_params(lower.as_deref(), upper.as_deref());
        let (mine, theirs) = tokio::try_join!(
            checksum(reference, &sql, params.clone()),
            checksum(other, &sql, params)
        )
        .with_context(|| format!("chunk {index}"))?;
        reference_rows += mine.0;
        other_rows += theirs.0;
        if mine != theirs {
            differing += 1;
            if differing <= LISTED_CHUNKS {
                chunks.push(Mismatch::Chunk {
                    schema: schema.to_owned(),
                    table: table.to_owned(),
                    index,
                    key: key.clone(),
                    lower: lower.as_deref().map(sql::values_text),
                    upper: upper.as_deref().map(sql::values_text),
                    reference: reference.endpoint.clone(),
                    reference_rows: mine.0,
                    other: other.endpoint.clone(),
                    other_rows: theirs.0,
                });
            }
        }
        match upper {
            Some(upper) => lower = Some(upper),
            None => break,
        }
    }

    let mut mismatches = Vec::new();
    if reference_rows != other_rows {
        mismatches.push(Mismatch::RowCount {
            schema: schema.to_owned(),
            table: table.to_owned(),
            reference: reference.endpoint.clone(),
            reference_rows,
            other: other.endpoint.clone(),
            other_rows,
        });
    }
    mismatches.append(&mut chunks);
    if differing > LISTED_CHUNKS {
        mismatches.push(Mismatch::MoreChunks {
            schema: schema.to_owned(),
            table: table.to_owned(),
            count: differing - LISTED_CHUNKS,
        });
    }
    let summary = TableSummary {
        schema: schema.to_owned(),
        table: table.to_owned(),
        rows: reference_rows,
        chunks: index,
    };
    Ok((Some(summary), mismatches))
}
