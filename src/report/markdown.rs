//! `bench-report --markdown FILE`: a short summary for a pull-request comment (thresholds, the
//! main table, a link to the report), rendered from `templates/summary.md`.

use std::collections::HashMap;

use serde_json::Value;

use super::threshold::failed;
use super::{Output, Report, ReportError, Templates};

/// File name of the markdown summary when written beside the report.
pub const FILE_NAME: &str = "summary.md";

/// Renders the markdown summary.
#[derive(Debug)]
pub struct MarkdownOutput<'t> {
    templates: &'t Templates,
    /// Where the full report is, as the comment links to it (none: no link).
    link: Option<String>,
}

impl<'t> MarkdownOutput<'t> {
    /// A markdown output linking to `link`.
    pub fn new(templates: &'t Templates, link: Option<String>) -> Self {
        MarkdownOutput { templates, link }
    }
}

impl Output for MarkdownOutput<'_> {
    fn file_name(&self) -> &'static str {
        FILE_NAME
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let mut ctx = tera::Context::new();
        ctx.insert("summary", &report.summary);
        ctx.insert("config", &report.config);
        ctx.insert("failed", &failed(&report.summary.thresholds));
        ctx.insert("link", &self.link);
        Ok(self.templates.render("summary.md", &ctx)?.into_bytes())
    }
}

/// `{{ x | md }}`: text safe in a markdown table cell: markdown punctuation backslashed, HTML
/// characters as entities, line breaks as spaces.
pub fn md(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_cannot_break_the_table_or_inject_html() {
        let v = md(
            &Value::String("a|b <img src=x> *c*\n[l](u)".into()),
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(v, "a\\|b &lt;img src=x&gt; \\*c\\* \\[l\\](u)");
    }
}
