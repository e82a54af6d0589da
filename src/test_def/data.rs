//! Data files (`[[data]]`): CSV with a header row or JSON lines, whose rows bind to test
//! executions as `{{ name.column }}`. Checked whole, streaming, when the test loads (so a bad
//! file fails at `bench-node check`, never mid-run), and read row by row by [`RowReader`], the
//! one parser `check` and the engine share.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::Source;
use super::raw::RawData;
use super::{TestDefError, BUILTINS};
use crate::result::{DataOrder, OnEnd};

/// A validated `[[data]]` file.
#[derive(Debug, Clone)]
pub struct DataSource {
    /// Templates use `{{ name.column }}`.
    pub name: String,
    /// The file as written, relative to the test's directory (what deploy copies).
    pub file: PathBuf,
    /// The file as opened: joined to the test's directory.
    pub path: PathBuf,
    pub format: DataFormat,
    pub order: DataOrder,
    pub on_end: OnEnd,
    /// Column names: the CSV header, or the keys of the first JSON line.
    pub columns: Vec<String>,
    /// Rows in the file (header and blank lines not counted).
    pub rows: u64,
    /// The first row, in column order (for `bench-node check`).
    pub first_row: Vec<String>,
}

/// How a data file is written, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// Comma-separated values with a header row (the `csv` crate's reading).
    Csv,
    /// One JSON object a line (`.jsonl`, `.ndjson`).
    Jsonl,
}

/// One row: values in column order.
pub type Row = Vec<String>;

/// What is wrong in a data file, and where (line and column from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl DataError {
    fn at(line: u64, column: u64, message: impl Into<String>) -> DataError {
        DataError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Reads a data file row by row, never whole.
pub struct RowReader {
    columns: Vec<String>,
    inner: Inner,
}

enum Inner {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        record: csv::ByteRecord,
    },
    Jsonl {
        lines: BufReader<File>,
        buf: Vec<u8>,
        /// Line of the last line read, from 1.
        line: u64,
    },
}

impl RowReader {
    /// Opens `path` and reads its columns (the header, or the first JSON line's keys).
    pub fn open(path: &Path, format: DataFormat) -> Result<RowReader, DataError> {
        let file =
            File::open(path).map_err(|e| DataError::at(1, 1, format!("cannot read: {e}")))?;
        let mut reader = match format {
            DataFormat::Csv => RowReader {
                columns: Vec::new(),
                inner: Inner::Csv {
                    reader: csv::ReaderBuilder::new()
                        .has_headers(false)
                        .flexible(true)
                        .from_reader(BufReader::new(file)),
                    record: csv::ByteRecord::new(),
                },
            },
            DataFormat::Jsonl => RowReader {
                columns: Vec::new(),
                inner: Inner::Jsonl {
                    lines: BufReader::new(file),
                    buf: Vec::new(),
                    line: 0,
                },
            },
        };
        reader.columns = reader.header()?;
        Ok(reader)
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The next row, `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Row>, DataError> {
        let columns = &self.columns;
        match &mut self.inner {
            Inner::Csv { reader, record } => {
                let Some((line, fields)) = csv_record(reader, record)? else {
                    return Ok(None);
                };
                if fields.len() != columns.len() {
                    return Err(DataError::at(
                        line,
                        1,
                        format!(
                            "this row has {} fields, the header has {} ({})",
                            fields.len(),
                            columns.len(),
                            columns.join(", ")
                        ),
                    ));
                }
                Ok(Some(fields))
            }
            Inner::Jsonl { lines, buf, line } => {
                let Some(object) = json_line(lines, buf, line)? else {
                    return Ok(None);
                };
                columns
                    .iter()
                    .map(|c| {
                        object.get(c).map(json_text).ok_or_else(|| {
                            DataError::at(
                                *line,
                                1,
                                format!("this object has no `{c}`, which the first line has"),
                            )
                        })
                    })
                    .collect::<Result<Row, _>>()
                    .map(Some)
            }
        }
    }

    /// The column names at the start of the file.
    fn header(&mut self) -> Result<Vec<String>, DataError> {
        let columns: Vec<String> = match &mut self.inner {
            Inner::Csv { reader, record } => match csv_record(reader, record)? {
                Some((_, names)) => names,
                None => return Err(DataError::at(1, 1, "the file is empty: give a header row")),
            },
            // The first object's keys; then back to the start, to read it again as a row.
            Inner::Jsonl { lines, buf, line } => {
                let Some(first) = json_line(lines, buf, line)? else {
                    return Err(DataError::at(
                        1,
                        1,
                        "the file is empty: give one object a line",
                    ));
                };
                std::io::Seek::rewind(lines)
                    .map_err(|e| DataError::at(1, 1, format!("cannot read: {e}")))?;
                *line = 0;
                first.keys().cloned().collect()
            }
        };
        let mut seen = HashSet::new();
        for (i, name) in columns.iter().enumerate() {
            if name.trim().is_empty() || !seen.insert(name.as_str()) {
                return Err(DataError::at(
                    1,
                    1,
                    format!(
                        "header column {} {name:?} is empty or repeated: give each column its own name",
                        i + 1
                    ),
                ));
            }
        }
        Ok(columns)
    }
}

/// The next CSV record as text, with its line; bad UTF-8 names its line and column.
fn csv_record(
    reader: &mut csv::Reader<BufReader<File>>,
    record: &mut csv::ByteRecord,
) -> Result<Option<(u64, Row)>, DataError> {
    let more = reader.read_byte_record(record).map_err(|e| {
        let line = e.position().map_or(1, |p| p.line());
        DataError::at(line, 1, format!("not CSV: {e}"))
    })?;
    if !more {
        return Ok(None);
    }
    let line = record.position().map_or(1, |p| p.line());
    let mut column = 1u64;
    let mut row = Vec::with_capacity(record.len());
    for field in record.iter() {
        match std::str::from_utf8(field) {
            Ok(text) => row.push(text.to_string()),
            Err(e) => {
                return Err(DataError::at(
                    line,
                    column + e.valid_up_to() as u64,
                    "not UTF-8: save the file as UTF-8",
                ))
            }
        }
        column += field.len() as u64 + 1;
    }
    Ok(Some((line, row)))
}

/// The next non-blank JSON line as an object.
fn json_line(
    lines: &mut BufReader<File>,
    buf: &mut Vec<u8>,
    line: &mut u64,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, DataError> {
    loop {
        buf.clear();
        let n = lines
            .read_until(b'\n', buf)
            .map_err(|e| DataError::at(*line + 1, 1, format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        *line += 1;
        let text = std::str::from_utf8(buf).map_err(|e| {
            DataError::at(
                *line,
                e.valid_up_to() as u64 + 1,
                "not UTF-8: save the file as UTF-8",
            )
        })?;
        if text.trim().is_empty() {
            continue;
        }
        return serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .map(Some)
            .map_err(|e| {
                DataError::at(
                    *line,
                    e.column().max(1) as u64,
                    format!("not a JSON object: {e}"),
                )
            });
    }
}

/// A JSON value as a template sees it: strings as they are, other values as JSON text.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Validates the `[[data]]` tables and reads each file through, streaming.
pub(crate) fn data_sources(
    src: &Source<'_>,
    raw: Vec<Spanned<RawData>>,
) -> Result<Vec<DataSource>, TestDefError> {
    let mut out: Vec<DataSource> = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let raw = raw.into_inner();
        let at = format!("[[data]] #{}", i + 1);
        let name = raw.name.get_ref().trim().to_string();
        let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.chars().next().is_some_and(|c| !c.is_ascii_digit());
        if !plain || BUILTINS.contains(&name.as_str()) || out.iter().any(|d| d.name == name) {
            return Err(src.error(
                raw.name.span(),
                &format!("{at} name"),
                format!(
                    "{name:?}: give a name of letters, digits and `_`, not a builtin ({}) nor another data file's",
                    BUILTINS.join(", ")
                ),
            ));
        }
        let order = word(src, &at, "order", raw.order.as_ref(), DataOrder::Sequential)?;
        let default_end = if order == DataOrder::Unique {
            OnEnd::Stop
        } else {
            OnEnd::Wrap
        };
        let on_end = word(src, &at, "on_end", raw.on_end.as_ref(), default_end)?;
        let file = PathBuf::from(raw.file.get_ref());
        let format = match file.extension().and_then(|e| e.to_str()) {
            Some("csv") => DataFormat::Csv,
            Some("jsonl" | "ndjson") => DataFormat::Jsonl,
            _ => {
                return Err(src.error(
                    raw.file.span(),
                    &format!("{at} file"),
                    format!("{file:?}: give a .csv (with a header row) or a .jsonl file"),
                ))
            }
        };
        let path = src.path.parent().unwrap_or(Path::new(".")).join(&file);
        if !path.is_file() {
            return Err(src.error(
                raw.file.span(),
                &format!("{at} file"),
                format!("cannot read {file:?} ({})", path.display()),
            ));
        }
        let (columns, rows, first_row) = scan(&path, format).map_err(|e| TestDefError::At {
            path: path.clone(),
            line: e.line as usize,
            column: e.column as usize,
            key: at.clone(),
            message: format!("data file of {at} {name:?}: {}", e.message),
        })?;
        out.push(DataSource {
            name,
            file,
            path,
            format,
            order,
            on_end,
            columns,
            rows,
            first_row,
        });
    }
    Ok(out)
}

/// Reads a data file through: its columns, row count and first row, or its first fault.
fn scan(path: &Path, format: DataFormat) -> Result<(Vec<String>, u64, Row), DataError> {
    let mut reader = RowReader::open(path, format)?;
    let mut rows = 0u64;
    let mut first = None;
    while let Some(row) = reader.next_row()? {
        rows += 1;
        first.get_or_insert(row);
    }
    let Some(first) = first else {
        return Err(DataError::at(2, 1, "the file has no rows after its header"));
    };
    Ok((reader.columns.clone(), rows, first))
}

/// A word of a closed set (`order`, `on_end`), or its default.
fn word<W: std::str::FromStr<Err = crate::words::UnknownWord>>(
    src: &Source<'_>,
    at: &str,
    key: &str,
    value: Option<&Spanned<String>>,
    default: W,
) -> Result<W, TestDefError> {
    match value {
        None => Ok(default),
        Some(v) => v.get_ref().parse().map_err(|e: crate::words::UnknownWord| {
            src.error(v.span(), &format!("{at} {key}"), e.to_string())
        }),
    }
}

/// The names templates may use for the data files' columns: `name.column`.
pub(crate) fn column_names(data: &[DataSource]) -> HashSet<String> {
    data.iter()
        .flat_map(|d| d.columns.iter().map(move |c| format!("{}.{c}", d.name)))
        .collect()
}
