//! The rows of the `[[data]]` files during a run, shared by every user of the node: each test
//! execution takes one row of each file ([`Rows::bind`]) at its start, before its first step.
//!
//! `sequential` and `unique` files are streamed ([`RowReader`]), never loaded whole: one
//! reader per file behind a lock taken once per execution (never per request). `unique` takes
//! rows `node, node + nodes, node + 2 × nodes...` (from 0), so that no two nodes of the run
//! share a row, and hands them out in order across the node's users. `random` files are small
//! by nature and held in memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::Rng;

use super::EngineError;
use crate::result::{DataOrder, DataUsage, OnEnd};
use crate::test_def::{DataSource, Row, RowReader, TestPlan, Vars};

/// Every data file's rows, for one node.
pub struct Rows {
    files: Vec<File>,
}

/// One data file's rows.
struct File {
    source: DataSource,
    /// `name.column` for each column: the keys the rows bind in [`Vars::captured`].
    keys: Vec<String>,
    /// Rows this node may use (its share for `unique`).
    rows: u64,
    /// Rows handed out so far.
    used: AtomicU64,
    kind: Kind,
}

enum Kind {
    /// `sequential` and `unique`: a reader (boxed, as it holds the CSV reader's buffers); the
    /// lock is taken once per test execution, by one user at a time, while a row is read.
    Stream(Box<Mutex<Stream>>),
    /// `random`: every row, read once at the start.
    Random(Vec<Row>),
}

/// Where a streamed file stands.
struct Stream {
    /// `None` once the rows ran out (with `stop`) or the file could not be read again.
    reader: Option<RowReader>,
    /// Index in the file of the next row the reader gives, from 0.
    next: u64,
    /// Rows of the file taken by this node: those whose index is `node` modulo `nodes`.
    node: u64,
    nodes: u64,
    exhausted: Option<Instant>,
}

impl Rows {
    /// The data files of `plan`, for node `node` of `nodes` (a `unique` file's share).
    pub fn open(plan: &TestPlan, node: u32, nodes: u32) -> Result<Rows, EngineError> {
        let files = plan
            .data
            .iter()
            .map(|d| File::open(d, node, nodes))
            .collect::<Result<_, _>>()?;
        Ok(Rows { files })
    }

    /// True when the test has no data files.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Binds one row of every data file into `vars`; false when a file's rows ran out (with
    /// `stop`): the execution does not start, and its user stops.
    pub fn bind(&self, vars: &mut Vars, rng: &mut SmallRng) -> bool {
        for file in &self.files {
            let row = match &file.kind {
                Kind::Random(rows) => rows[rng.gen_range(0..rows.len())].clone(),
                Kind::Stream(stream) => {
                    let mut stream = stream.lock().unwrap_or_else(|p| p.into_inner());
                    match stream.take(&file.source) {
                        Some(row) => row,
                        None => return false,
                    }
                }
            };
            file.used.fetch_add(1, Ordering::Relaxed);
            for (key, value) in file.keys.iter().zip(row) {
                vars.captured.insert(key.clone(), value);
            }
        }
        true
    }

    /// How many rows each file gave, and when it ran out (ms since `t0`, the run's start).
    pub fn usage(&self, t0: Instant) -> Vec<DataUsage> {
        self.files
            .iter()
            .map(|f| {
                let exhausted = match &f.kind {
                    Kind::Random(_) => None,
                    Kind::Stream(s) => s.lock().unwrap_or_else(|p| p.into_inner()).exhausted,
                };
                DataUsage {
                    name: f.source.name.clone(),
                    file: f.source.file.display().to_string(),
                    order: f.source.order,
                    on_end: f.source.on_end,
                    rows: f.rows,
                    used: f.used.load(Ordering::Relaxed),
                    exhausted_ms: exhausted
                        .map(|t| t.saturating_duration_since(t0).as_millis() as u64),
                }
            })
            .collect()
    }
}

impl File {
    fn open(source: &DataSource, node: u32, nodes: u32) -> Result<File, EngineError> {
        let fail = |e: crate::test_def::DataError| EngineError::Data {
            file: source.path.display().to_string(),
            line: e.line,
            message: e.message,
        };
        let (node, nodes) = match source.order {
            DataOrder::Unique => (u64::from(node), u64::from(nodes.max(1))),
            DataOrder::Sequential | DataOrder::Random => (0, 1),
        };
        let rows = source.rows / nodes + u64::from(node < source.rows % nodes);
        let mut reader = RowReader::open(&source.path, source.format).map_err(fail)?;
        let kind = if source.order == DataOrder::Random {
            let mut all = Vec::new();
            while let Some(row) = reader.next_row().map_err(fail)? {
                all.push(row);
            }
            if all.is_empty() {
                return Err(fail(crate::test_def::DataError {
                    line: 1,
                    column: 1,
                    message: "the file has no rows".into(),
                }));
            }
            Kind::Random(all)
        } else {
            Kind::Stream(Box::new(Mutex::new(Stream {
                reader: Some(reader),
                next: 0,
                node,
                nodes,
                exhausted: (rows == 0 && source.on_end == OnEnd::Stop).then(Instant::now),
            })))
        };
        Ok(File {
            keys: source
                .columns
                .iter()
                .map(|c| format!("{}.{c}", source.name))
                .collect(),
            source: source.clone(),
            rows,
            used: AtomicU64::new(0),
            kind,
        })
    }
}

impl Stream {
    /// The next row of this node's share; at the end, from the start again (`wrap`) or none
    /// ever after (`stop`).
    fn take(&mut self, source: &DataSource) -> Option<Row> {
        // At most two passes: a share with no row at all ends here too.
        for _ in 0..2 {
            while let Some(reader) = &mut self.reader {
                // A file changed under the run reads as its end: no panic, no row.
                let Ok(Some(row)) = reader.next_row() else {
                    break;
                };
                let index = self.next;
                self.next += 1;
                if index % self.nodes == self.node {
                    return Some(row);
                }
            }
            if source.on_end == OnEnd::Stop {
                break;
            }
            self.reader = RowReader::open(&source.path, source.format).ok();
            self.next = 0;
        }
        self.reader = None;
        self.exhausted.get_or_insert_with(Instant::now);
        None
    }
}
