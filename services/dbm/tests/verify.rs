//! `dbm::verify::compare` against two real MariaDB servers loaded with the same data:
//! several schemas, an integer key with gaps, a composite key, a binary unique key, a
//! latin1 key, tables without a usable key, NULLs next to `''` and `'NULL'`, utf8mb4
//! text, BLOBs, an empty table, odd names. Equal servers compare equal; each kind of
//! change made on the other server is reported with its table and chunk; a consistent
//! snapshot stays open through a comparison.
//!
//! The servers do not replicate: both are loaded by the same statements, and each test
//! then changes one of them behind the other's back.

use std::path::Path;

use dbm::config::{Config, Role};
use dbm::db::{Db, connect};
use dbm::verify::{self, Comparison, Mismatch, Options};
use testbed::servers::{Host, MariaDb, MariaDbOptions, Server};

const PASSWORD: &str = "dbm-verify-3a9";
const CHUNK_ROWS: u64 = 100;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The same data on both servers. `app.items`: ids 3, 6, ... 3000 without the multiples
/// of 21 (858 rows, 9 chunks); `app.pairs`: key (a, b) in the order of `seq`, row n being
/// (n DIV 3, 'k' n%3) (450 rows, 5 chunks); `logs.events` has no key and pairs of equal
/// rows; `logs.maybe` only a unique key on a nullable column, so no key either.
const DATA: &str = "
    SET NAMES utf8mb4;
    CREATE DATABASE app;
    CREATE DATABASE logs;
    CREATE TABLE app.items (
        id INT PRIMARY KEY,
        name VARCHAR(60) CHARACTER SET utf8mb4 NOT NULL,
        note VARCHAR(20) NULL,
        body BLOB NULL,
        price DECIMAL(10, 2),
        at DATETIME(6),
        ts TIMESTAMP(3) NULL DEFAULT NULL
    ) ENGINE=InnoDB;
    INSERT INTO app.items
        SELECT seq * 3,
               CONCAT('item ', seq, ' — ünïcødé 🦀'),
               ELT(seq % 4 + 1, NULL, '', 'NULL', CONCAT('n', seq)),
               IF(seq % 5 = 0, NULL, UNHEX(CONCAT(MD5(seq), '00FF', MD5(seq + 1)))),
               seq / 7,
               TIMESTAMP('2024-01-01') + INTERVAL seq MINUTE + INTERVAL seq MICROSECOND,
               IF(seq % 3 = 0, NULL, FROM_UNIXTIME(1700000000 + seq + 0.125))
        FROM mysql.seq_1_to_1000 WHERE seq % 7 <> 0;
    CREATE TABLE app.pairs (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT,
                            PRIMARY KEY (a, b)) ENGINE=InnoDB;
    INSERT INTO app.pairs SELECT seq DIV 3, CONCAT('k', seq % 3), seq FROM mysql.seq_1_to_450;
    CREATE TABLE app.empty (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB;
    CREATE TABLE app.`odd``name` (`k``ey` INT PRIMARY KEY, `v al` TEXT) ENGINE=InnoDB;
    INSERT INTO app.`odd``name` SELECT seq, REPEAT('x', seq) FROM mysql.seq_1_to_250;
    CREATE TABLE logs.events (at INT, msg VARCHAR(20)) ENGINE=InnoDB;
    INSERT INTO logs.events SELECT seq DIV 2, CONCAT('event ', seq DIV 2) FROM mysql.seq_1_to_250;
    CREATE TABLE logs.codes (code VARBINARY(16) NOT NULL, n INT, UNIQUE KEY by_code (code))
        ENGINE=InnoDB;
    INSERT INTO logs.codes SELECT UNHEX(MD5(seq)), seq FROM mysql.seq_1_to_500;
    CREATE TABLE logs.latin (name VARCHAR(20) CHARACTER SET latin1 NOT NULL PRIMARY KEY, n INT)
        ENGINE=InnoDB;
    INSERT INTO logs.latin SELECT CONCAT(ELT(seq % 3 + 1, 'é', 'ß', 'Ø'), seq), seq
        FROM mysql.seq_1_to_300;
    CREATE TABLE logs.maybe (u INT NULL, v INT, UNIQUE KEY (u)) ENGINE=InnoDB;
    INSERT INTO logs.maybe SELECT IF(seq % 10 = 0, NULL, seq), seq FROM mysql.seq_1_to_150;
";

/// Every table with its rows and chunks at [`CHUNK_ROWS`]: a chunk ends at every 100th
/// key, so 500 rows make 6 chunks, the last one empty on the reference.
const TABLES: &[(&str, &str, u64, u64)] = &[
    ("app", "empty", 0, 1),
    ("app", "items", 858, 9),
    ("app", "odd`name", 250, 3),
    ("app", "pairs", 450, 5),
    ("logs", "codes", 500, 6),
    ("logs", "events", 250, 1),
    ("logs", "latin", 300, 4),
    ("logs", "maybe", 150, 1),
];

/// `app.items`' ids in key order.
fn item_ids() -> Vec<u64> {
    (1..=1000u64)
        .filter(|s| s % 7 != 0)
        .map(|s| s * 3)
        .collect()
}

struct Pair {
    _dir: tempfile::TempDir,
    /// The reference (db0 in the plan).
    a: MariaDb,
    /// The other server (db1 in the plan).
    b: MariaDb,
    config: Config,
}

impl Pair {
    fn start() -> Pair {
        let start = |server_id| {
            let db = MariaDb::start_with(
                Host::Loopback,
                MariaDbOptions {
                    server_id,
                    ..MariaDbOptions::default()
                },
            )
            .unwrap();
            db.query(&format!(
                "CREATE USER 'dbm'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';
                 GRANT ALL PRIVILEGES ON *.* TO 'dbm'@'127.0.0.1';"
            ))
            .unwrap();
            db.query(DATA).unwrap();
            db
        };
        let a = start(1);
        let b = start(2);
        let dir = tempfile::tempdir().unwrap();
        let config = plan(dir.path(), &a, &b);
        Pair {
            _dir: dir,
            a,
            b,
            config,
        }
    }

    fn a_endpoint(&self) -> String {
        format!("db0 (127.0.0.1:{})", self.a.addr().port())
    }

    fn b_endpoint(&self) -> String {
        format!("db1 (127.0.0.1:{})", self.b.addr().port())
    }

    async fn connect(&self) -> (Db, Db) {
        (
            connect(Role::Db0, &self.config.db0).await.unwrap(),
            connect(Role::Db1, &self.config.db1).await.unwrap(),
        )
    }

    /// `a` compared with `b` in chunks of [`CHUNK_ROWS`], over new connections.
    async fn compare(&self) -> Comparison {
        let (mut a, mut b) = self.connect().await;
        let options = Options {
            chunk_rows: CHUNK_ROWS,
            ..Options::default()
        };
        let result = verify::compare(&mut a, &mut b, &options).await.unwrap();
        println!("{result}");
        a.close().await;
        b.close().await;
        result
    }

    /// A chunk of `schema.table` with `key`, whose bounds are SQL literals.
    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &self,
        schema: &str,
        table: &str,
        index: u64,
        key: &[&str],
        lower: Option<&str>,
        upper: Option<&str>,
        rows: (u64, u64),
    ) -> Mismatch {
        Mismatch::Chunk {
            schema: schema.to_owned(),
            table: table.to_owned(),
            index,
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            lower: lower.map(str::to_owned),
            upper: upper.map(str::to_owned),
            reference: self.a_endpoint(),
            reference_rows: rows.0,
            other: self.b_endpoint(),
            other_rows: rows.1,
        }
    }

    fn row_count(&self, schema: &str, table: &str, rows: (u64, u64)) -> Mismatch {
        Mismatch::RowCount {
            schema: schema.to_owned(),
            table: table.to_owned(),
            reference: self.a_endpoint(),
            reference_rows: rows.0,
            other: self.b_endpoint(),
            other_rows: rows.1,
        }
    }
}

/// A plan whose db0 is `a` and db1 `b` (db2 is never connected to).
fn plan(dir: &Path, a: &MariaDb, b: &MariaDb) -> Config {
    let pass = dir.join("dbm.pass");
    std::fs::write(&pass, format!("{PASSWORD}\n")).unwrap();
    let d = dir.display();
    let text = format!(
        "state_file = \"{d}/migration.json\"\n\
         [db0]\nhost = \"127.0.0.1\"\nport = {a_port}\nuser = \"dbm\"\n\
         password_file = \"{pass}\"\ndatadir = \"{a_data}\"\n\
         [db1]\nhost = \"127.0.0.1\"\nport = {b_port}\nuser = \"dbm\"\n\
         password_file = \"{pass}\"\ndatadir = \"{b_data}\"\n\
         stop_command = \"true\"\nstart_command = \"true\"\n\
         [db2]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"dbm\"\n\
         password_file = \"{pass}\"\ndatadir = \"{d}/db2\"\n\
         [replication]\nuser = \"repl\"\npassword_file = \"{pass}\"\n",
        a_port = a.addr().port(),
        b_port = b.addr().port(),
        pass = pass.display(),
        a_data = a.datadir().display(),
        b_data = b.datadir().display(),
    );
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).unwrap();
    appliance::config::load(&path).unwrap()
}

#[test]
fn equal_servers_compare_equal_chunk_by_chunk() {
    let pair = Pair::start();
    block_on(async {
        let result = pair.compare().await;
        assert!(result.ok(), "{result}");
        let tables: Vec<(&str, &str, u64, u64)> = result
            .tables
            .iter()
            .map(|t| (t.schema.as_str(), t.table.as_str(), t.rows, t.chunks))
            .collect();
        assert_eq!(tables, TABLES);
        assert_eq!(
            result.to_string(),
            "8 tables, 2758 rows in 30 chunks compared: equal"
        );

        let (mut a, mut b) = pair.connect().await;
        // The default chunk size: one chunk per table.
        let whole = verify::compare(&mut a, &mut b, &Options::default())
            .await
            .unwrap();
        assert_eq!(
            whole.to_string(),
            "8 tables, 2758 rows in 8 chunks compared: equal"
        );
        // One schema only; a chunk of one row.
        let options = Options {
            chunk_rows: 1,
            schemas: Some(vec!["logs".to_owned()]),
        };
        let logs = verify::compare(&mut a, &mut b, &options).await.unwrap();
        assert!(logs.ok(), "{logs}");
        let names: Vec<&str> = logs.tables.iter().map(|t| t.table.as_str()).collect();
        assert_eq!(names, ["codes", "events", "latin", "maybe"]);
        assert_eq!(logs.chunks(), 501 + 1 + 301 + 1);
        // The reference answers in chunks of its own; the other server need not have the
        // key at all for the ranges to mean the same there.
        b.run(
            "dropping db1's key",
            "ALTER TABLE logs.codes DROP KEY by_code",
        )
        .await
        .unwrap();
        let logs = verify::compare(&mut a, &mut b, &options).await.unwrap();
        assert!(logs.ok(), "{logs}");
        let none = Options {
            chunk_rows: 1,
            schemas: Some(Vec::new()),
        };
        let nothing = verify::compare(&mut a, &mut b, &none).await.unwrap();
        assert_eq!(
            nothing.to_string(),
            "0 tables, 0 rows in 0 chunks compared: equal"
        );
        let err = verify::compare(
            &mut a,
            &mut b,
            &Options {
                chunk_rows: 0,
                schemas: None,
            },
        )
        .await
        .unwrap_err();
        assert!(format!("{err:#}").contains("chunk_rows"), "{err:#}");
        a.close().await;
        b.close().await;
    });
}

#[test]
fn a_changed_value_is_located_to_its_chunk() {
    let pair = Pair::start();
    let ids = item_ids();
    // Row 451 of 858 is in chunk 5, which holds rows 401 to 500.
    pair.b
        .query(&format!(
            "UPDATE app.items SET price = price + 0.01 WHERE id = {}",
            ids[450]
        ))
        .unwrap();
    block_on(async {
        let result = pair.compare().await;
        let lower = ids[399].to_string();
        let upper = ids[499].to_string();
        assert_eq!(
            result.mismatches,
            [pair.chunk(
                "app",
                "items",
                5,
                &["id"],
                Some(&lower),
                Some(&upper),
                (100, 100)
            )]
        );
        let text = result.to_string();
        assert!(
            text.starts_with("8 tables, 2758 rows in 30 chunks compared: 1 mismatch\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "`app`.`items` chunk 5 ({lower} < `id` <= {upper}): 100 rows on {}, as many on \
                 {} but with other contents",
                pair.a_endpoint(),
                pair.b_endpoint()
            )),
            "{text}"
        );
    });
}

#[test]
fn a_deleted_row_shows_in_the_count_and_in_its_chunk() {
    let pair = Pair::start();
    // Row n of app.pairs in key order is (n DIV 3, 'k' n%3): row 150 is in chunk 2
    // (rows 101 to 200, after (33, 'k1') up to (66, 'k2')).
    pair.b
        .query("DELETE FROM app.pairs WHERE a = 50 AND b = 'k0'")
        .unwrap();
    block_on(async {
        let result = pair.compare().await;
        assert_eq!(
            result.mismatches,
            [
                pair.row_count("app", "pairs", (450, 449)),
                pair.chunk(
                    "app",
                    "pairs",
                    2,
                    &["a", "b"],
                    Some("(33, 'k1')"),
                    Some("(66, 'k2')"),
                    (100, 99)
                ),
            ]
        );
        assert!(
            result.to_string().contains(
                "`app`.`pairs` chunk 2 ((33, 'k1') < (`a`, `b`) <= (66, 'k2')): 100 rows"
            ),
            "{result}"
        );
    });
}

#[test]
fn a_row_beyond_the_last_key_counts_in_the_last_chunk() {
    let pair = Pair::start();
    pair.b
        .query("INSERT INTO app.items (id, name) VALUES (999999, 'late')")
        .unwrap();
    block_on(async {
        let result = pair.compare().await;
        let lower = item_ids()[799].to_string();
        assert_eq!(
            result.mismatches,
            [
                pair.row_count("app", "items", (858, 859)),
                pair.chunk("app", "items", 9, &["id"], Some(&lower), None, (58, 59)),
            ]
        );
        assert!(
            result
                .to_string()
                .contains(&format!("`app`.`items` chunk 9 (`id` > {lower}): 58 rows")),
            "{result}"
        );
    });
}

/// Changes a careless checksum misses: NULL to `''` and to `'NULL'` (CONCAT_WS skips
/// NULLs), `ü` to `u` (equal in the column's collation), one byte of a BLOB.
#[test]
fn nulls_collation_equal_text_and_blob_bytes_are_told_apart() {
    let pair = Pair::start();
    let ids = item_ids();
    // Note is NULL where seq % 4 = 0, seq = id / 3. Chunk k holds ids[100(k-1)..100k].
    let null_note = |chunk: usize| {
        ids[(chunk - 1) * 100..chunk * 100]
            .iter()
            .copied()
            .find(|id| (id / 3) % 4 == 0)
            .unwrap()
    };
    let body_id = ids[750]; // chunk 8; seq % 5 != 0, so it has a body
    assert_ne!((body_id / 3) % 5, 0);
    pair.b
        .query(&format!(
            "SET NAMES utf8mb4;
             UPDATE app.items SET note = '' WHERE id = {};
             UPDATE app.items SET note = 'NULL' WHERE id = {};
             UPDATE app.items SET name = REPLACE(name, 'ü', 'u') WHERE id = {};
             UPDATE app.items SET body = UNHEX(CONCAT(MD5({seq}), '00FE', MD5({seq} + 1)))
                 WHERE id = {body_id};",
            null_note(2),
            null_note(3),
            ids[550],
            seq = body_id / 3,
        ))
        .unwrap();
    let changed = pair
        .b
        .query(&format!(
            "SET NAMES utf8mb4;
             SELECT COUNT(*) FROM app.items WHERE name LIKE '%ünïcødé%' COLLATE utf8mb4_general_ci
                 AND id = {}",
            ids[550]
        ))
        .unwrap();
    assert_eq!(changed.trim(), "1", "the collation finds ü = u");
    block_on(async {
        let result = pair.compare().await;
        let bound = |i: usize| ids[i].to_string();
        let chunk = |index: u64| {
            let i = usize::try_from(index).unwrap();
            pair.chunk(
                "app",
                "items",
                index,
                &["id"],
                Some(&bound((i - 1) * 100 - 1)),
                Some(&bound(i * 100 - 1)),
                (100, 100),
            )
        };
        assert_eq!(result.mismatches, [chunk(2), chunk(3), chunk(6), chunk(8)]);
    });
}

#[test]
fn missing_extra_and_changed_tables_are_named() {
    let pair = Pair::start();
    pair.b
        .query(
            "DROP TABLE app.empty;
             ALTER TABLE app.`odd``name` ADD COLUMN extra INT;
             CREATE TABLE logs.only_here (id INT PRIMARY KEY);",
        )
        .unwrap();
    block_on(async {
        let result = pair.compare().await;
        assert_eq!(
            result.mismatches,
            [
                Mismatch::MissingTable {
                    schema: "app".into(),
                    table: "empty".into(),
                    on: pair.b_endpoint(),
                },
                Mismatch::Columns {
                    schema: "app".into(),
                    table: "odd`name".into(),
                    reference: pair.a_endpoint(),
                    reference_columns: vec!["k`ey".into(), "v al".into()],
                    other: pair.b_endpoint(),
                    other_columns: vec!["k`ey".into(), "v al".into(), "extra".into()],
                },
                Mismatch::ExtraTable {
                    schema: "logs".into(),
                    table: "only_here".into(),
                    on: pair.b_endpoint(),
                },
            ]
        );
        assert_eq!(
            result.tables.len(),
            6,
            "the tables on both with equal columns"
        );
        let text = result.to_string();
        for line in [
            format!("`app`.`empty` is missing on {}", pair.b_endpoint()),
            format!("`logs`.`only_here` exists only on {}", pair.b_endpoint()),
            format!(
                "`app`.`odd``name` has the columns `k``ey`, `v al` on {} but `k``ey`, `v al`, \
                 `extra` on {}; its rows were not compared",
                pair.a_endpoint(),
                pair.b_endpoint()
            ),
        ] {
            assert!(text.contains(&line), "{line} in {text}");
        }
    });
}

#[test]
fn a_table_without_a_key_is_compared_whole() {
    let pair = Pair::start();
    let whole = |rows| pair.chunk("logs", "events", 1, &[], None, None, rows);
    // One row more: a copy of a row that is there twice already.
    pair.b
        .query("INSERT INTO logs.events VALUES (7, 'event 7')")
        .unwrap();
    block_on(async {
        let result = pair.compare().await;
        assert_eq!(
            result.mismatches,
            [
                pair.row_count("logs", "events", (250, 251)),
                whole((250, 251))
            ]
        );
        assert!(
            result
                .to_string()
                .contains("`logs`.`events` chunk 1 (the whole table: it has no key)"),
            "{result}"
        );
    });
    // As many rows, but a pair of equal rows replaced by another pair of equal rows: a
    // XOR of row hashes would not see it, the sum does.
    pair.b
        .query(
            "DELETE FROM logs.events WHERE at = 7 LIMIT 1;
             UPDATE logs.events SET msg = 'event x' WHERE at = 5;",
        )
        .unwrap();
    block_on(async {
        let result = pair.compare().await;
        assert_eq!(result.mismatches, [whole((250, 250))]);
    });
}

/// Both connections inside a consistent snapshot, rows changed on both servers by other
/// connections afterwards: the comparison sees the snapshots (twice: it did not end
/// them), and after a ROLLBACK the changes.
#[test]
fn consistent_snapshots_stay_open_through_a_comparison() {
    let pair = Pair::start();
    block_on(async {
        let (mut a, mut b) = pair.connect().await;
        for db in [&mut a, &mut b] {
            db.run(
                "opening a snapshot",
                "START TRANSACTION WITH CONSISTENT SNAPSHOT",
            )
            .await
            .unwrap();
        }
        pair.b
            .query(
                "INSERT INTO app.items (id, name) VALUES (1, 'early'), (999999, 'late');
                 DELETE FROM logs.events LIMIT 3;
                 UPDATE app.pairs SET v = 0 WHERE a = 100;",
            )
            .unwrap();
        pair.a
            .query("INSERT INTO logs.codes VALUES (0x00, 0);")
            .unwrap();
        let options = Options {
            chunk_rows: CHUNK_ROWS,
            ..Options::default()
        };
        for _ in 0..2 {
            let result = verify::compare(&mut a, &mut b, &options).await.unwrap();
            assert!(result.ok(), "{result}");
            assert_eq!(result.rows(), 2758);
        }
        for db in [&mut a, &mut b] {
            let open: Option<u64> = db
                .first("asking for the transaction", "SELECT @@in_transaction")
                .await
                .unwrap();
            assert_eq!(open, Some(1), "{} is still in its snapshot", db.endpoint);
            db.run("closing the snapshot", "ROLLBACK").await.unwrap();
        }
        let result = verify::compare(&mut a, &mut b, &options).await.unwrap();
        println!("{result}");
        let tables: Vec<(&str, &str)> = result.mismatches.iter().map(Mismatch::table).collect();
        assert!(tables.contains(&("app", "items")), "{result}");
        assert!(tables.contains(&("app", "pairs")), "{result}");
        assert!(tables.contains(&("logs", "events")), "{result}");
        assert!(tables.contains(&("logs", "codes")), "{result}");
        assert!(
            result
                .mismatches
                .contains(&pair.row_count("logs", "codes", (501, 500)))
        );
        a.close().await;
        b.close().await;
    });
}
