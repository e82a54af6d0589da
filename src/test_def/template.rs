//! Templated values (`{{ user }}`, `{{ token }}`): compiled once at load, rendered per request.
//!
//! Three shapes, cheapest first: a value without `{{`/`{%` is static and renders as a borrowed
//! string; a value made only of text and plain names (`/u/{{ user }}?t={{ token }}`) is rendered
//! by concatenation; anything else (filters, conditions...) is rendered by tera, compiled once.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use tera::ast::{Expr, ExprVal, Node};

use super::Vars;

/// Names every template may use, besides values captured by earlier steps.
pub const BUILTINS: [&str; 4] = ["node", "nodes", "user", "iteration"];

/// The filters tera 1.20 registers with the features this build enables (`urlencode`, not
/// `builtins`): a template naming any other is refused at load, not rendered empty at run time.
/// `urlencode` and `urlencode_strict` percent-encode a value for a URL (see the README).
#[rustfmt::skip]
pub const FILTERS: &[&str] = &[
    "upper", "lower", "trim", "trim_start", "trim_end", "trim_start_matches",
    "trim_end_matches", "truncate", "wordcount", "replace", "capitalize", "title",
    "linebreaksbr", "indent", "striptags", "spaceless", "urlencode", "urlencode_strict",
    "escape", "escape_xml", "addslashes", "split", "int", "float", "first", "last", "nth",
    "join", "sort", "unique", "slice", "group_by", "filter", "map", "concat", "abs",
    "pluralize", "round", "length", "reverse", "json_encode", "as_str", "get",
];

/// A compiled template string.
#[derive(Clone)]
pub struct Template {
    /// The value as written.
    source: Arc<str>,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// No template syntax; the bytes are kept ready for bodies.
    Static(Bytes),
    /// Text and plain names only.
    Simple(Vec<Segment>),
    /// Full tera; `names` are the variables it refers to.
    Tera {
        tera: Arc<tera::Tera>,
        names: Vec<Var>,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Text(String),
    Var(Var),
}

/// A variable a template refers to.
#[derive(Clone, Debug, PartialEq)]
enum Var {
    Node,
    Nodes,
    User,
    Iteration,
    Captured(String),
}

impl Var {
    fn new(name: &str) -> Var {
        match name {
            "node" => Var::Node,
            "nodes" => Var::Nodes,
            "user" => Var::User,
            "iteration" => Var::Iteration,
            other => Var::Captured(other.to_string()),
        }
    }

    fn name(&self) -> &str {
        match self {
            Var::Node => "node",
            Var::Nodes => "nodes",
            Var::User => "user",
            Var::Iteration => "iteration",
            Var::Captured(name) => name,
        }
    }

    fn write(&self, out: &mut String, vars: &Vars) {
        // Writing to a String cannot fail.
        let _ = match self {
            Var::Node => write!(out, "{}", vars.node),
            Var::Nodes => write!(out, "{}", vars.nodes),
            Var::User => write!(out, "{}", vars.user),
            Var::Iteration => write!(out, "{}", vars.iteration),
            Var::Captured(name) => {
                out.push_str(vars.captured.get(name).map_or("", String::as_str));
                Ok(())
            }
        };
    }
}

const TERA_NAME: &str = "value";

impl Template {
    /// Compiles `source`; `known` tells whether a name other than the builtins may be used
    /// (captured by an earlier step). `Err` says what is wrong, for the caller to locate.
    pub fn compile(source: &str, known: &dyn Fn(&str) -> bool) -> Result<Template, String> {
        let shared: Arc<str> = Arc::from(source);
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(Template {
                source: shared,
                kind: Kind::Static(Bytes::copy_from_slice(source.as_bytes())),
            });
        }
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![]);
        tera.add_raw_template(TERA_NAME, source)
            .map_err(|e| syntax_error(source, &e))?;
        let ast = &tera
            .get_template(TERA_NAME)
            .map_err(|e| error_chain(&e))?
            .ast;

        let mut free = Free::default();
        collect_nodes(ast, &mut Vec::new(), &mut free)?;
        if let Some(filter) = free.filters.iter().find(|f| !FILTERS.contains(&f.as_str())) {
            return Err(format!(
                "unknown filter `{filter}` in template `{source}` (filters: {})",
                FILTERS.join(", ")
            ));
        }
        // A data column (`account.login`) is known whole; any other dotted or indexed name
        // by its root (`token.id` reads into a captured value).
        let mut names: Vec<String> = Vec::new();
        for full in &free.names {
            let root = full.split(['.', '[']).next().unwrap_or(full).trim();
            let name = if full.contains('.') && known(full) {
                full.as_str()
            } else if BUILTINS.contains(&root) || known(root) {
                root
            } else {
                return Err(format!(
                    "unknown name `{full}` in template `{source}` (use node, nodes, user, \
                     iteration, a value captured by an earlier step or a data file's column as \
                     name.column)"
                ));
            };
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        let kind = match simple_segments(ast, known) {
            Some(segments) => Kind::Simple(segments),
            None => Kind::Tera {
                tera: Arc::new(tera),
                names: names.iter().map(|n| Var::new(n)).collect(),
            },
        };
        Ok(Template {
            source: shared,
            kind,
        })
    }

    /// A template that is plain text, never interpreted.
    pub fn literal(text: &str) -> Template {
        Template {
            source: Arc::from(text),
            kind: Kind::Static(Bytes::copy_from_slice(text.as_bytes())),
        }
    }

    /// Renders with `vars`; a static template costs nothing. A captured value missing from
    /// `vars` renders as an empty string; a tera runtime error (e.g. a filter applied to a
    /// value of the wrong type) renders as an empty string too: see [`Template::try_render`].
    pub fn render(&self, vars: &Vars) -> Cow<'_, str> {
        self.try_render(vars).unwrap_or_default()
    }

    /// Renders with `vars`, or says why tera could not.
    pub fn try_render(&self, vars: &Vars) -> Result<Cow<'_, str>, String> {
        match &self.kind {
            Kind::Static(_) => Ok(Cow::Borrowed(&self.source)),
            Kind::Simple(segments) => {
                let mut out = String::with_capacity(self.source.len() + 16);
                for segment in segments {
                    match segment {
                        Segment::Text(text) => out.push_str(text),
                        Segment::Var(var) => var.write(&mut out, vars),
                    }
                }
                Ok(Cow::Owned(out))
            }
            Kind::Tera { tera, names } => {
                let mut context = tera::Context::new();
                // Data columns (`account.login`) go in as one object per data file.
                let mut rows: std::collections::BTreeMap<
                    &str,
                    std::collections::BTreeMap<&str, &str>,
                > = Default::default();
                for var in names {
                    match var {
                        Var::Node => context.insert("node", &vars.node),
                        Var::Nodes => context.insert("nodes", &vars.nodes),
                        Var::User => context.insert("user", &vars.user),
                        Var::Iteration => context.insert("iteration", &vars.iteration),
                        Var::Captured(name) => {
                            let value = vars.captured.get(name).map_or("", String::as_str);
                            match name.split_once('.') {
                                Some((file, column)) => {
                                    rows.entry(file).or_default().insert(column, value);
                                }
                                None => context.insert(name, value),
                            }
                        }
                    }
                }
                for (file, columns) in rows {
                    context.insert(file, &columns);
                }
                tera.render(TERA_NAME, &context)
                    .map(Cow::Owned)
                    .map_err(|e| error_chain(&e))
            }
        }
    }

    /// Renders into bytes (for bodies); a static template gives its bytes without copying.
    pub fn render_bytes(&self, vars: &Vars) -> Bytes {
        match &self.kind {
            Kind::Static(bytes) => bytes.clone(),
            _ => Bytes::from(self.render(vars).into_owned()),
        }
    }

    /// True when the value has no template syntax (renders to itself).
    pub fn is_static(&self) -> bool {
        matches!(self.kind, Kind::Static(_))
    }

    /// The value as written in the test file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Names the template refers to, builtins included, in order of first use.
    pub fn names(&self) -> Vec<&str> {
        match &self.kind {
            Kind::Static(_) => Vec::new(),
            Kind::Simple(segments) => {
                let mut out: Vec<&str> = Vec::new();
                for segment in segments {
                    if let Segment::Var(var) = segment {
                        if !out.contains(&var.name()) {
                            out.push(var.name());
                        }
                    }
                }
                out
            }
            Kind::Tera { names, .. } => names.iter().map(Var::name).collect(),
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Static(_) => "static",
            Kind::Simple(_) => "simple",
            Kind::Tera { .. } => "tera",
        };
        f.debug_struct("Template")
            .field("source", &self.source)
            .field("kind", &kind)
            .finish()
    }
}

/// Tera errors nest their cause; a user wants the whole chain on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            write!(out, ": {text}").ok();
        }
        cause = c.source();
    }
    out.replace('\n', " ")
}

/// Tera's syntax errors are drawings over several lines; a user wants one: where, and what
/// was expected.
fn syntax_error(source: &str, e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text = c.to_string();
        cause = c.source();
    }
    let at = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .and_then(|pos| pos.split(':').nth(1))
        .map(|col| format!(" at character {col}"))
        .unwrap_or_default();
    let what = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("= "))
        .map(|w| format!(": {w}"))
        .unwrap_or_else(|| format!(": {}", text.replace('\n', " ")));
    format!("invalid template `{source}`{at}{what}")
}

/// The segments of a template made only of text and plain names (a data column's
/// `name.column` included), else `None`.
fn simple_segments(ast: &[Node], known: &dyn Fn(&str) -> bool) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for node in ast {
        match node {
            Node::Text(text) => out.push(Segment::Text(text.clone())),
            Node::Raw(_, text, _) => out.push(Segment::Text(text.clone())),
            Node::Comment(..) => {}
            Node::VariableBlock(_, expr) => match &expr.val {
                ExprVal::Ident(name)
                    if expr.filters.is_empty()
                        && !expr.negated
                        && (!name.contains(['.', '[']) || known(name)) =>
                {
                    out.push(Segment::Var(Var::new(name)))
                }
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(out)
}

/// What a template refers to: its free names and the filters it applies.
#[derive(Default)]
struct Free {
    names: BTreeSet<String>,
    filters: BTreeSet<String>,
}

/// Collects the free names and filters of `nodes`; `locals` are names bound by `set` and `for`.
fn collect_nodes(nodes: &[Node], locals: &mut Vec<String>, out: &mut Free) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(_)
            | Node::Raw(..)
            | Node::Comment(..)
            | Node::Break(_)
            | Node::Continue(_) => {}
            Node::VariableBlock(_, expr) => collect_expr(expr, locals, out),
            Node::Set(_, set) => {
                collect_expr(&set.value, locals, out);
                locals.push(set.key.clone());
            }
            Node::FilterSection(_, section, _) => {
                out.filters.insert(section.filter.name.clone());
                section
                    .filter
                    .args
                    .values()
                    .for_each(|e| collect_expr(e, locals, out));
                collect_nodes(&section.body, locals, out)?;
            }
            Node::Forloop(_, forloop, _) => {
                collect_expr(&forloop.container, locals, out);
                let depth = locals.len();
                locals.extend(forloop.key.iter().cloned());
                locals.push(forloop.value.clone());
                locals.push("loop".to_string());
                collect_nodes(&forloop.body, locals, out)?;
                locals.truncate(depth);
                if let Some(empty) = &forloop.empty_body {
                    collect_nodes(empty, locals, out)?;
                }
            }
            Node::If(cond, _) => {
                for (_, expr, body) in &cond.conditions {
                    collect_expr(expr, locals, out);
                    collect_nodes(body, locals, out)?;
                }
                if let Some((_, body)) = &cond.otherwise {
                    collect_nodes(body, locals, out)?;
                }
            }
            Node::Super
            | Node::MacroDefinition(..)
            | Node::Extends(..)
            | Node::Include(..)
            | Node::ImportMacro(..)
            | Node::Block(..) => {
                return Err(
                    "blocks, macros, includes and extends are not supported in test templates"
                        .to_string(),
                )
            }
        }
    }
    Ok(())
}

fn collect_expr(expr: &Expr, locals: &[String], out: &mut Free) {
    collect_val(&expr.val, locals, out);
    for filter in &expr.filters {
        out.filters.insert(filter.name.clone());
        filter
            .args
            .values()
            .for_each(|e| collect_expr(e, locals, out));
    }
}

fn collect_val(val: &ExprVal, locals: &[String], out: &mut Free) {
    match val {
        ExprVal::String(_) | ExprVal::Int(_) | ExprVal::Float(_) | ExprVal::Bool(_) => {}
        ExprVal::Ident(name) => add_ident(name, locals, out),
        ExprVal::Math(m) => {
            collect_expr(&m.lhs, locals, out);
            collect_expr(&m.rhs, locals, out);
        }
        ExprVal::Logic(l) => {
            collect_expr(&l.lhs, locals, out);
            collect_expr(&l.rhs, locals, out);
        }
        ExprVal::In(i) => {
            collect_expr(&i.lhs, locals, out);
            collect_expr(&i.rhs, locals, out);
        }
        ExprVal::Test(t) => {
            add_ident(&t.ident, locals, out);
            t.args.iter().for_each(|e| collect_expr(e, locals, out));
        }
        ExprVal::MacroCall(m) => m.args.values().for_each(|e| collect_expr(e, locals, out)),
        ExprVal::FunctionCall(f) => f.args.values().for_each(|e| collect_expr(e, locals, out)),
        ExprVal::Array(items) => items.iter().for_each(|e| collect_expr(e, locals, out)),
        ExprVal::StringConcat(c) => c.values.iter().for_each(|v| collect_val(v, locals, out)),
    }
}

/// Adds a name as written (`a`, `a.b`, `a[0]`), unless its root is a local.
fn add_ident(name: &str, locals: &[String], out: &mut Free) {
    let root = name.split(['.', '[']).next().unwrap_or(name).trim();
    if !root.is_empty() && !locals.iter().any(|l| l == root) {
        out.names.insert(name.trim().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let mut vars = Vars {
            node: 2,
            nodes: 4,
            user: 7,
            iteration: 11,
            ..Vars::default()
        };
        vars.captured.insert("token".into(), "abc".into());
        vars
    }

    fn compile(source: &str) -> Result<Template, String> {
        Template::compile(source, &|name| name == "token")
    }

    #[test]
    fn static_value_is_borrowed() {
        let t = compile("/static/path?x=1").unwrap();
        assert!(t.is_static());
        let rendered = t.render(&vars());
        assert!(matches!(rendered, Cow::Borrowed(_)));
        assert_eq!(rendered, "/static/path?x=1");
        // The body bytes of a static template are shared, not copied.
        let a = t.render_bytes(&vars());
        let b = t.render_bytes(&vars());
        assert_eq!(a.as_ptr(), b.as_ptr());
    }

    #[test]
    fn builtins_and_captured_values() {
        let t =
            compile("/n{{ node }}of{{nodes}}/u{{ user }}/i{{ iteration }}?t={{ token }}").unwrap();
        assert!(!t.is_static());
        assert_eq!(t.render(&vars()), "/n2of4/u7/i11?t=abc");
        assert_eq!(t.names(), ["node", "nodes", "user", "iteration", "token"]);
    }

    #[test]
    fn missing_captured_value_renders_empty() {
        let t = compile("t={{ token }}").unwrap();
        assert_eq!(t.render(&Vars::default()), "t=");
    }

    #[test]
    fn full_tera_expressions() {
        let t = compile("user{{ user + node * 1000 }}-{{ token | upper }}").unwrap();
        assert!(matches!(t.kind, Kind::Tera { .. }));
        assert_eq!(t.render(&vars()), "user2007-ABC");
        let t = compile("{% if user == 7 %}seven{% else %}other{% endif %}").unwrap();
        assert_eq!(t.render(&vars()), "seven");
        let t = compile("{% for i in [1, 2] %}{{ i }}{{ loop.index }}{% endfor %}").unwrap();
        assert_eq!(t.render(&vars()), "1122");
    }

    #[test]
    fn no_html_escaping() {
        let mut v = vars();
        v.captured.insert("token".into(), "<a&b>".into());
        assert_eq!(compile("{{ token }}").unwrap().render(&v), "<a&b>");
        assert_eq!(compile("{{ token | lower }}").unwrap().render(&v), "<a&b>");
    }

    #[test]
    fn unknown_names_are_rejected() {
        let err = compile("/x/{{ tokn }}").unwrap_err();
        assert!(err.contains("unknown name `tokn`"), "{err}");
        let err = compile("{{ user + missing }}").unwrap_err();
        assert!(err.contains("`missing`"), "{err}");
        let err = compile("/x{{ user").unwrap_err();
        assert!(
            err.starts_with("invalid template `/x{{ user` at character 10: expected "),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn urlencode_filters_encode_captured_values() {
        let mut v = vars();
        v.captured.insert("token".into(), "a&b=c d/é".into());
        let t = compile("/x?t={{ token | urlencode }}").unwrap();
        assert_eq!(t.render(&v), "/x?t=a%26b%3Dc%20d/%C3%A9");
        let t = compile("/x?t={{ token | urlencode_strict }}").unwrap();
        assert_eq!(t.render(&v), "/x?t=a%26b%3Dc%20d%2F%C3%A9");
    }

    #[test]
    fn unknown_filters_are_rejected_at_load() {
        let err = compile("/x?t={{ token | urlencod }}").unwrap_err();
        assert!(
            err.starts_with("unknown filter `urlencod` in template"),
            "{err}"
        );
        let err = compile("{% filter shout %}x{% endfilter %}").unwrap_err();
        assert!(err.contains("unknown filter `shout`"), "{err}");
        // Filters of tera's `builtins` feature are not in this build.
        assert!(compile("{{ token | slugify }}").is_err());
    }

    #[test]
    fn every_listed_filter_exists_in_tera() {
        let missing = |filter: &str| {
            let mut tera = tera::Tera::default();
            tera.add_raw_template("t", &format!("{{{{ x | {filter} }}}}"))
                .unwrap();
            let mut context = tera::Context::new();
            context.insert("x", "a");
            // Filters that need arguments fail too, but not for want of the filter.
            tera.render("t", &context)
                .is_err_and(|e| error_chain(&e).contains(&format!("Filter '{filter}' not found")))
        };
        for filter in FILTERS {
            assert!(!missing(filter), "{filter}");
        }
        assert!(missing("slugify"));
    }

    #[test]
    fn comments_alone_and_braces_are_plain_text() {
        for text in ["{#anchor}", "{\"a\": 1}", "a } b {"] {
            let t = compile(text).unwrap();
            assert!(t.is_static(), "{text}");
            assert_eq!(t.render(&vars()), text);
        }
    }

    #[test]
    fn templates_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Template>();
        shared::<crate::test_def::TestPlan>();
    }
}
