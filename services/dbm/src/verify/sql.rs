//! The statements verification sends, built from names only: key values always travel as
//! parameters, in the order [`bound_params`] gives them.

use mysql_async::Value;

/// Schemas that belong to the server, not to the application: never compared unless
/// named in [`super::Options::schemas`].
pub const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// `name` as an identifier: in backticks, a backtick inside doubled.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `` `schema`.`table` ``.
pub fn table(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// The key's columns for messages: `` `id` `` or `` (`a`, `b`) ``.
pub fn key_text(key: &[String]) -> String {
    let quoted = key.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    if key.len() == 1 {
        quoted
    } else {
        format!("({quoted})")
    }
}

/// A key value for messages, as SQL literals: `42`, `'k1'`, `(5, 'k1')`.
pub fn values_text(values: &[Value]) -> String {
    let literals = values
        .iter()
        .map(|v| v.as_sql(false))
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() == 1 {
        literals
    } else {
        format!("({literals})")
    }
}

/// The base tables of the schemas named (`schemas` placeholders, one per name), or of all
/// schemas but the [`SYSTEM_SCHEMAS`]. MariaDB's system-versioned tables are base tables
/// with history; their current rows are compared.
pub fn list_tables(schemas: usize) -> String {
    let filter = if schemas == 0 {
        let system = SYSTEM_SCHEMAS.map(|s| format!("'{s}'")).join(", ");
        format!("NOT IN ({system})")
    } else {
        format!("IN ({})", vec!["?"; schemas].join(", "))
    };
    format!(
        "SELECT table_schema, table_name FROM information_schema.tables \
         WHERE table_type IN ('BASE TABLE', 'SYSTEM VERSIONED') AND table_schema {filter}"
    )
}

/// A table's columns in their order, with their types: parameters schema, table.
pub const LIST_COLUMNS: &str = "SELECT column_name, data_type FROM information_schema.columns \
     WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position";

/// A table's indexes' columns: parameters schema, table. One row per column of each
/// index: name, column (`NULL` for an expression), non-unique, nullable (`YES` or ``).
pub const LIST_INDEX_COLUMNS: &str = "SELECT index_name, column_name, non_unique, nullable \
     FROM information_schema.statistics WHERE table_schema = ? AND table_name = ? \
     ORDER BY index_name, seq_in_index";

/// One row of [`LIST_INDEX_COLUMNS`].
pub type IndexColumn = (String, Option<String>, i64, String);

/// The key chunks are walked by: the primary key, or else the first (by name) unique
/// key whose columns are all `NOT NULL`; `None` when the table has neither.
pub fn choose_key(rows: &[IndexColumn]) -> Option<Vec<String>> {
    let mut indexes: Vec<(&str, Vec<&IndexColumn>)> = Vec::new();
    for row in rows {
        match indexes.last_mut() {
            Some((name, columns)) if *name == row.0 => columns.push(row),
            _ => indexes.push((&row.0, vec![row])),
        }
    }
    let usable = |columns: &[&IndexColumn]| {
        columns.iter().all(|(_, column, non_unique, nullable)| {
            column.is_some() && *non_unique == 0 && !nullable.eq_ignore_ascii_case("YES")
        })
    };
    let primary = indexes.iter().find(|(name, _)| *name == "PRIMARY");
    primary
        .into_iter()
        .chain(indexes.iter().filter(|(name, _)| *name != "PRIMARY"))
        .find(|(_, columns)| usable(columns))
        .map(|(_, columns)| {
            columns
                .iter()
                .filter_map(|(_, column, _, _)| column.clone())
                .collect()
        })
}

/// A column as the row hash needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `information_schema.columns.data_type`, in lower case.
    pub data_type: String,
}

/// Types whose values can be long: hashed on their own first, so that the row's
/// concatenation stays far below `max_allowed_packet` (beyond it `CONCAT_WS` gives NULL
/// and the row would silently drop out of the sum).
const LONG_TYPES: &[&str] = &[
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
    "tinytext",
    "text",
    "mediumtext",
    "longtext",
    "json",
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
];

/// The column's value as bytes: the stored bytes of strings (whatever their character
/// set and collation, so no "illegal mix of collations" and no conversion), the text of
/// numbers and dates, TIMESTAMPs as seconds since the epoch (independent of the
/// session's time zone), long values as their MD5.
fn column_bytes(column: &Column) -> String {
    let name = quote(&column.name);
    let data_type = column.data_type.to_ascii_lowercase();
    if data_type == "timestamp" {
        format!("UNIX_TIMESTAMP({name})")
    } else if LONG_TYPES.contains(&data_type.as_str()) {
        format!("MD5(CAST({name} AS BINARY))")
    } else {
        format!("CAST({name} AS BINARY)")
    }
}

/// The 64-bit hash of one row: the first 16 hex digits of the MD5 of every column's
/// length in bytes (-1 for NULL) followed by every non-NULL value. The lengths make the
/// encoding unambiguous: NULL, `''` and `'NULL'` differ, and so do `('a#', 'b')` and
/// `('a', '#b')`.
pub fn row_hash(columns: &[Column]) -> String {
    let values: Vec<String> = columns.iter().map(column_bytes).collect();
    let lengths = values.iter().map(|v| format!("IFNULL(LENGTH({v}), -1)"));
    let parts = lengths.chain(values.iter().cloned()).collect::<Vec<_>>();
    format!(
        "CAST(CONV(LEFT(MD5(CONCAT_WS('#', {})), 16), 16, 10) AS UNSIGNED)",
        parts.join(", ")
    )
}

/// `key > (?, ...)` (`beyond` `>`) or `key <= (?, ...)` (`<`), written out column by
/// column: `` `a` > ? OR (`a` = ? AND `b` > ?) ``. MariaDB (10.11) does not use an index
/// range for a row constructor comparison (`(a, b) > (?, ?)`) and scans the whole index
/// instead, which makes walking a big table quadratic. Key columns are `NOT NULL`, so
/// both forms mean the same.
fn compare(key: &[String], less: bool) -> String {
    let (strict, last) = if less { ("<", "<=") } else { (">", ">") };
    let disjuncts: Vec<String> = (0..key.len())
        .map(|i| {
            let op = if i + 1 == key.len() { last } else { strict };
            let mut terms: Vec<String> = key[..i]
                .iter()
                .map(|c| format!("{} = ?", quote(c)))
                .collect();
            terms.push(format!("{} {op} ?", quote(&key[i])));
            terms.join(" AND ")
        })
        .collect();
    if disjuncts.len() == 1 {
        disjuncts.into_iter().next().unwrap_or_default()
    } else {
        format!(
            "({})",
            disjuncts
                .iter()
                .map(|d| format!("({d})"))
                .collect::<Vec<_>>()
                .join(" OR ")
        )
    }
}

/// The parameters for one [`compare`]: for each column in turn, the values of it and of
/// every column before it.
fn compare_params(values: &[Value]) -> impl Iterator<Item = Value> + '_ {
    (0..values.len()).flat_map(move |i| values[..=i].iter().cloned())
}

/// The `WHERE` clause (with a leading space) for the rows above `lower` and up to
/// `upper`; empty when both are open.
fn range(key: &[String], lower: bool, upper: bool) -> String {
    let mut conditions = Vec::new();
    if lower {
        conditions.push(compare(key, false));
    }
    if upper {
        conditions.push(compare(key, true));
    }
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// The parameters for a range from [`boundary`] or [`checksum`], in their order.
pub fn bound_params(lower: Option<&[Value]>, upper: Option<&[Value]>) -> Vec<Value> {
    lower
        .into_iter()
        .chain(upper)
        .flat_map(compare_params)
        .collect()
}

/// The key of the `rows`-th row above `lower` (from the start with `after` false): the
/// upper bound of the chunk that starts there. `rows` is at least 1.
pub fn boundary(schema: &str, name: &str, key: &[String], after: bool, rows: u64) -> String {
    let columns = key.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {columns} FROM {}{} ORDER BY {columns} LIMIT 1 OFFSET {}",
        table(schema, name),
        range(key, after, false),
        rows.saturating_sub(1)
    )
}

/// The rows and the sum of their hashes (a decimal in text) in a chunk: rows above the
/// lower bound when `lower`, up to the upper bound when `upper`. A sum rather than
/// `BIT_XOR`: in a table without a key, two equal rows would cancel out of a XOR.
pub fn checksum(
    schema: &str,
    name: &str,
    columns: &[Column],
    key: &[String],
    lower: bool,
    upper: bool,
) -> String {
    format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM({}), 0) AS CHAR) FROM {}{}",
        row_hash(columns),
        table(schema, name),
        range(key, lower, upper)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn column(name: &str, data_type: &str) -> Column {
        Column {
            name: name.to_owned(),
            data_type: data_type.to_owned(),
        }
    }

    #[test]
    fn identifiers_are_quoted_with_inner_backticks_doubled() {
        assert_eq!(quote("t"), "`t`");
        assert_eq!(quote("we`ird"), "`we``ird`");
        assert_eq!(quote("``"), "``````");
        assert_eq!(table("my db", "a.b"), "`my db`.`a.b`");
        assert_eq!(key_text(&key(&["id"])), "`id`");
        assert_eq!(key_text(&key(&["a", "b`"])), "(`a`, `b```)");
    }

    #[test]
    fn a_single_column_key_walks_with_plain_comparisons() {
        let k = key(&["id"]);
        assert_eq!(
            boundary("s", "t", &k, false, 100),
            "SELECT `id` FROM `s`.`t` ORDER BY `id` LIMIT 1 OFFSET 99"
        );
        assert_eq!(
            boundary("s", "t", &k, true, 1),
            "SELECT `id` FROM `s`.`t` WHERE `id` > ? ORDER BY `id` LIMIT 1 OFFSET 0"
        );
        let sql = checksum("s", "t", &[column("id", "int")], &k, true, true);
        assert!(
            sql.ends_with(" FROM `s`.`t` WHERE `id` > ? AND `id` <= ?"),
            "{sql}"
        );
        let sql = checksum("s", "t", &[column("id", "int")], &k, false, false);
        assert!(sql.ends_with(" FROM `s`.`t`"), "{sql}");
    }

    #[test]
    fn a_composite_key_is_compared_column_by_column() {
        let k = key(&["a", "b"]);
        assert_eq!(
            boundary("s", "t", &k, true, 10),
            "SELECT `a`, `b` FROM `s`.`t` WHERE ((`a` > ?) OR (`a` = ? AND `b` > ?)) \
             ORDER BY `a`, `b` LIMIT 1 OFFSET 9"
        );
        let sql = checksum("s", "t", &[column("a", "int")], &k, true, true);
        assert!(
            sql.ends_with(
                " WHERE ((`a` > ?) OR (`a` = ? AND `b` > ?)) \
                 AND ((`a` < ?) OR (`a` = ? AND `b` <= ?))"
            ),
            "{sql}"
        );
        let three = compare(&key(&["a", "b", "c"]), false);
        assert_eq!(
            three,
            "((`a` > ?) OR (`a` = ? AND `b` > ?) OR (`a` = ? AND `b` = ? AND `c` > ?))"
        );
        // The upper bound only: the first chunk.
        let sql = checksum("s", "t", &[column("a", "int")], &k, false, true);
        assert!(
            sql.ends_with(" WHERE ((`a` < ?) OR (`a` = ? AND `b` <= ?))"),
            "{sql}"
        );
    }

    #[test]
    fn parameters_repeat_each_prefix_of_the_bound() {
        let lower = [Value::Int(5), Value::from("k1")];
        let upper = [Value::Int(9), Value::from("k0")];
        assert_eq!(
            bound_params(Some(&lower), Some(&upper)),
            vec![
                Value::Int(5),
                Value::Int(5),
                Value::from("k1"),
                Value::Int(9),
                Value::Int(9),
                Value::from("k0"),
            ]
        );
        assert_eq!(bound_params(None, Some(&upper[..1])), vec![Value::Int(9)]);
        assert!(bound_params(None, None).is_empty());
        // As many placeholders as parameters.
        let k = key(&["a", "b", "c"]);
        let three = [Value::Int(1), Value::Int(2), Value::Int(3)];
        let sql = checksum("s", "t", &[column("a", "int")], &k, true, true);
        assert_eq!(
            sql.matches('?').count(),
            bound_params(Some(&three), Some(&three)).len()
        );
    }

    #[test]
    fn the_row_hash_encodes_lengths_nulls_and_types() {
        let sql = row_hash(&[
            column("id", "int"),
            column("note", "varchar"),
            column("at", "timestamp"),
            column("body", "LONGBLOB"),
        ]);
        assert_eq!(
            sql,
            "CAST(CONV(LEFT(MD5(CONCAT_WS('#', \
             IFNULL(LENGTH(CAST(`id` AS BINARY)), -1), \
             IFNULL(LENGTH(CAST(`note` AS BINARY)), -1), \
             IFNULL(LENGTH(UNIX_TIMESTAMP(`at`)), -1), \
             IFNULL(LENGTH(MD5(CAST(`body` AS BINARY))), -1), \
             CAST(`id` AS BINARY), CAST(`note` AS BINARY), UNIX_TIMESTAMP(`at`), \
             MD5(CAST(`body` AS BINARY)))), 16), 16, 10) AS UNSIGNED)"
        );
        assert!(row_hash(&[column("we`ird", "int")]).contains("CAST(`we``ird` AS BINARY)"));
    }

    #[test]
    fn tables_are_listed_from_the_schemas_asked_for() {
        let all = list_tables(0);
        assert!(
            all.ends_with(
                "table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"
            ),
            "{all}"
        );
        assert!(list_tables(2).ends_with("table_schema IN (?, ?)"));
    }

    #[test]
    fn the_key_is_the_primary_key_or_a_unique_key_without_nulls() {
        let row = |index: &str, column: &str, non_unique: i64, nullable: &str| -> IndexColumn {
            (
                index.to_owned(),
                Some(column.to_owned()),
                non_unique,
                nullable.to_owned(),
            )
        };
        let rows = vec![
            row("PRIMARY", "a", 0, ""),
            row("PRIMARY", "b", 0, ""),
            row("by_c", "c", 0, ""),
        ];
        assert_eq!(choose_key(&rows), Some(key(&["a", "b"])));
        let rows = vec![
            row("a_nullable", "x", 0, "YES"),
            row("b_not_unique", "y", 1, ""),
            row("c_unique", "u", 0, ""),
            row("c_unique", "v", 0, ""),
        ];
        assert_eq!(choose_key(&rows), Some(key(&["u", "v"])));
        let rows = vec![
            row("half_null", "x", 0, ""),
            row("half_null", "y", 0, "YES"),
            row("plain", "z", 1, ""),
        ];
        assert_eq!(choose_key(&rows), None);
        // An expression in a key (MySQL's functional key parts) cannot be walked.
        let rows = vec![("f".to_owned(), None, 0, String::new())];
        assert_eq!(choose_key(&rows), None);
        assert_eq!(choose_key(&[]), None);
    }

    #[test]
    fn bounds_are_shown_as_sql_literals() {
        assert_eq!(values_text(&[Value::Int(42)]), "42");
        assert_eq!(
            values_text(&[Value::Int(5), Value::from("it's")]),
            "(5, 'it\\'s')"
        );
        assert_eq!(values_text(&[Value::Bytes(vec![0xff, 0x00])]), "0xFF00");
    }
}
