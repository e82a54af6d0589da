//! The tera templates of every HTML page, embedded in the binary and overridable from a
//! directory, with the filters they use to format figures.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::ReportError;

/// Embedded templates: (name, source). A `--templates DIR` file of the same name replaces one.
const EMBEDDED: &[(&str, &str)] = &[
    ("style.css", include_str!("../../templates/style.css")),
    ("base.html", include_str!("../../templates/base.html")),
    ("figure.html", include_str!("../../templates/figure.html")),
    ("report.html", include_str!("../../templates/report.html")),
    ("diff.html", include_str!("../../templates/diff.html")),
    ("trend.html", include_str!("../../templates/trend.html")),
    ("index.html", include_str!("../../templates/index.html")),
    (
        "thresholds.html",
        include_str!("../../templates/thresholds.html"),
    ),
    ("summary.md", include_str!("../../templates/summary.md")),
    ("live.html", include_str!("../../templates/live.html")),
];

/// The loaded templates (autoescape on for every `*.html`).
#[derive(Debug)]
pub struct Templates {
    tera: tera::Tera,
}

impl Templates {
    /// The embedded templates, each replaced by the file of the same name in `dir` if present.
    pub fn load(dir: Option<&Path>) -> Result<Templates, ReportError> {
        let mut sources = Vec::new();
        for (name, embedded) in EMBEDDED {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path).map_err(ReportError::io(&path))?,
                None => (*embedded).to_string(),
            };
            sources.push((*name, source));
        }
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![".html"]);
        tera.add_raw_templates(sources)
            .map_err(|source| ReportError::Template {
                name: dir.map_or("(embedded)".into(), |d| d.display().to_string()),
                source: Box::new(source),
            })?;
        tera.register_filter("num", num);
        tera.register_filter("opt", opt);
        tera.register_filter("md", super::markdown::md);
        Ok(Templates { tera })
    }

    /// Renders template `name` with `context`.
    pub fn render(&self, name: &str, context: &tera::Context) -> Result<String, ReportError> {
        self.tera
            .render(name, context)
            .map_err(|source| ReportError::Template {
                name: name.to_string(),
                source: Box::new(source),
            })
    }
}

/// `{{ x | num(d=1) }}`: a number with `d` decimals and thousands separated; null → `–`.
fn num(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let d = args.get("d").and_then(Value::as_u64).unwrap_or(0) as usize;
    Ok(Value::String(match value.as_f64() {
        Some(x) => format_num(x, d),
        None => "–".into(),
    }))
}

/// `{{ x | opt }}`: the value, or `–` when null.
fn opt(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(match value {
        Value::Null => Value::String("–".into()),
        v => v.clone(),
    })
}

/// `x` with `d` decimals and a thin space between thousands.
pub fn format_num(x: f64, d: usize) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let s = format!("{:.*}", d, x.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(i, f)| (i, f));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if x < 0.0 && out.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.insert(0, '−');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(format_num(1234567.891, 1), "1\u{202f}234\u{202f}567.9");
        assert_eq!(format_num(999.0, 0), "999");
        assert_eq!(format_num(-12.5, 1), "−12.5");
        assert_eq!(format_num(-0.01, 1), "0.0");
        assert_eq!(format_num(f64::NAN, 1), "–");
    }

    #[test]
    fn embedded_templates_parse() {
        Templates::load(None).unwrap();
    }
}
