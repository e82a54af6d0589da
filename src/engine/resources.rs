//! Page resources (`resources = true` or `"all"` on a step): after an HTML answer, the
//! stylesheets, scripts, images and icons the page names are fetched as a browser would —
//! through the user's cache ([`super::cache`]), over up to `resource_connections` extra
//! keep-alive connections at once (streams on the user's one connection for HTTP/2). They are
//! requests of their page: each one is recorded as a request (and each redirect it follows
//! within the step's origins), the page lasts until the last of them is in, and one that fails
//! or errs makes its page fail or err, in the page's error group. They carry the user's
//! cookies, and the cookies they set go to the user's jar.
//!
//! What a page names, in document order and each once: `<link rel=stylesheet>` (not an
//! alternate one) and `<link rel=icon>`, `<script src>`, `<img>` and, in a `<picture>`,
//! `<video>` or `<audio>`, its first `<source>` (then not the `<img>`). Of a `srcset`, the
//! largest candidate (widest, or densest): one image per element, as a browser fetches, and the
//! heaviest it could pick, so that the load is not understated. Nothing inside `<template>`,
//! script or style text, or `<noscript>` (a browser running scripts ignores it). URLs resolve
//! against the first `<base href>`, else the page's URL (after its redirects).

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use std::sync::atomic::Ordering;

use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, COOKIE};
use hyper::{HeaderMap, Method, StatusCode};
use url::Url;

use super::cache::{Cache, Lookup, Stored};
use super::client::{Client, Connector, Outgoing};
use super::h2::H2Slot;
use super::record::{BodySize, Verdict};
use super::user::{redirect_target, same_origin, Fault, User, MAX_REDIRECTS};
use crate::result::{ErrorKind, PageResources, MAX_SAMPLE_BODY};
use crate::test_def::{HttpVersion, Resources, Step};

/// Most resources one page fetches: a bound on what a generated or hostile page can ask for.
pub const MAX_PAGE_RESOURCES: usize = 256;

/// A user's extra connections for page resources and its cache of them, made with its first
/// page that has resources and kept with its client.
pub struct Browser {
    /// One client per extra connection: its own HTTP/1.1 connection, or streams on the user's
    /// HTTP/2 connection (they share its slot).
    clients: Vec<Client>,
    cache: Cache,
}

impl Browser {
    fn new(connector: &Arc<Connector>, timeout: Duration, h2: &H2Slot, n: u32) -> Browser {
        Browser {
            clients: (0..n.max(1))
                .map(|_| Client::sharing(connector.clone(), timeout, h2.clone()))
                .collect(),
            cache: Cache::default(),
        }
    }
}

/// What one page's resources came to.
pub(super) struct Fetched {
    pub counts: PageResources,
    /// Their body bytes, over the wire and decoded.
    pub size: BodySize,
    /// `Success`, or the worst of the resources that failed (`Failure`) or erred (`Error`).
    pub outcome: Verdict,
    /// The first resource that went as badly as `outcome`.
    pub fault: Option<Fault>,
    /// When the last request came back (`None` when none was sent).
    pub done: Option<Instant>,
}

/// True when `headers` say the body is an HTML document.
pub(super) fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|t| {
            t.eq_ignore_ascii_case("text/html") || t.eq_ignore_ascii_case("application/xhtml+xml")
        })
}

/// How one resource went (its request, and the redirects it followed).
struct Answer {
    outcome: Verdict,
    /// Requests sent: 1, or more when it was redirected.
    requests: u64,
    size: BodySize,
    revalidated: bool,
    done: Instant,
    fault: Option<Fault>,
}

/// What the connections fetching one page's resources share.
struct Shared<'a> {
    /// The user's own client: its cookie jar sends and takes the resources' cookies.
    user: RefCell<&'a mut Client>,
    cache: RefCell<&'a mut Cache>,
    http: HttpVersion,
    compression: bool,
    page: &'a Url,
    scope: Resources,
}

impl User {
    /// Fetches the resources `html` (the answer of `step` at `page`) names; `client` is the
    /// user's, whose cookies they carry and which keeps the [`Browser`].
    pub(super) async fn resources(
        &self,
        client: &mut Client,
        step: &Step,
        page: &Url,
        html: &[u8],
    ) -> Fetched {
        let mut fetched = Fetched {
            counts: PageResources::default(),
            size: BodySize::default(),
            outcome: Verdict::Success,
            fault: None,
            done: None,
        };
        let urls = resource_urls(html, page, step.resources);
        if urls.is_empty() {
            return fetched;
        }
        let mut browser = client.browser.take().unwrap_or_else(|| {
            let bench = &self.plan.bench;
            let n = bench.resource_connections;
            Box::new(Browser::new(&self.connector, bench.timeout, client.h2(), n))
        });
        let now = SystemTime::now();
        let mut wanted = Vec::new();
        for url in urls {
            match browser.cache.lookup(&url, now) {
                Lookup::Fresh => fetched.counts.cached += 1,
                Lookup::Send(validators) => wanted.push((url, validators)),
            }
        }
        let Browser { clients, cache } = &mut *browser;
        let queue = &RefCell::new(wanted.iter());
        let shared = &Shared {
            user: RefCell::new(&mut *client),
            cache: RefCell::new(cache),
            http: step.http,
            compression: step.compression.unwrap_or(self.plan.bench.compression),
            page,
            scope: step.resources,
        };
        // Each connection takes the next resource when it is free, as a browser's do.
        let lanes = clients.iter_mut().take(wanted.len()).map(|c| async move {
            let mut answers = Vec::new();
            loop {
                let next = queue.borrow_mut().next();
                let Some((url, validators)) = next else {
                    break answers;
                };
                answers.push(self.resource(c, url, validators, shared).await);
            }
        });
        for answer in futures_util::future::join_all(lanes)
            .await
            .into_iter()
            .flatten()
        {
            let c = &mut fetched.counts;
            c.requests += answer.requests;
            c.bytes += answer.size.wire;
            fetched.size += answer.size;
            c.revalidated += u64::from(answer.revalidated);
            fetched.done = fetched.done.max(Some(answer.done));
            if worse(answer.outcome, fetched.outcome) {
                fetched.outcome = answer.outcome;
                fetched.fault = answer.fault;
            }
        }
        client.browser = Some(browser);
        fetched
    }

    /// One resource on `client`: its request (with the cache's `validators`), and the
    /// redirects it follows within the step's origins, each recorded; the cache takes in its
    /// answer, the user's jar its cookies.
    async fn resource(
        &self,
        client: &mut Client,
        url: &Url,
        validators: &[(HeaderName, HeaderValue)],
        shared: &Shared<'_>,
    ) -> Answer {
        let mut answer = Answer {
            outcome: Verdict::Success,
            requests: 0,
            size: BodySize::default(),
            revalidated: false,
            done: Instant::now(),
            fault: None,
        };
        let mut url = url.clone();
        let mut headers = validators.to_vec();
        for hop in 0..=MAX_REDIRECTS {
            if let Some(cookie) = shared.user.borrow().cookie_header(&url) {
                headers.push((COOKIE, cookie));
            }
            let req = Outgoing {
                http: shared.http,
                method: Method::GET,
                url: &url,
                headers: &headers,
                content_type: None,
                body: Bytes::new(),
                compression: shared.compression,
            };
            let sent = Instant::now();
            let result = client.send(req, MAX_SAMPLE_BODY, sent).await;
            let done = Instant::now();
            let latency = done - sent;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            answer.requests += 1;
            answer.done = done;
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    answer.outcome = Verdict::Error;
                    answer.fault = self.request_error(e, &url, done, latency, 0).fault;
                    return answer;
                }
            };
            answer.size += response.size();
            shared
                .user
                .borrow_mut()
                .keep_cookies(&response.headers, &url);
            let code = response.status.as_u16();
            let accepted = response.status.is_success()
                || response.status == StatusCode::NOT_MODIFIED
                || self.plan.bench.ok_codes.contains(&code);
            answer.outcome = if accepted {
                Verdict::Success
            } else {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                Verdict::Failure
            };
            self.recorder.borrow_mut().request(
                &self.window,
                done,
                latency,
                answer.outcome,
                response.size(),
            );
            let allowed = |next: &Url| match shared.scope {
                Resources::All => matches!(next.scheme(), "http" | "https"),
                _ => same_origin(next, shared.page),
            };
            let next = redirect_target(&url, response.status, &response.headers);
            if let Some(next) = next.filter(|n| hop < MAX_REDIRECTS && allowed(n)) {
                url = next;
                headers.clear();
                continue;
            }
            let now = SystemTime::now();
            let stored =
                (shared.cache.borrow_mut()).answered(&url, response.status, &response.headers, now);
            answer.revalidated = stored == Stored::Revalidated;
            if !accepted {
                let detail = format!("resource HTTP {code}");
                let body = &response.body;
                answer.fault = Some(Fault::new(
                    ErrorKind::Status,
                    detail,
                    url.as_str(),
                    Some(code),
                    body,
                ));
            }
            break;
        }
        answer
    }
}

/// True when `a` is a worse outcome than `b` (an error is worse than a failure).
fn worse(a: Verdict, b: Verdict) -> bool {
    let rank = |v| match v {
        Verdict::Success => 0,
        Verdict::Failure => 1,
        Verdict::Error => 2,
    };
    rank(a) > rank(b)
}

/// The URLs of the resources `html` names (see the module's doc), resolved, without their
/// fragment, each once, at most [`MAX_PAGE_RESOURCES`]; only `page`'s origin unless `scope` is
/// [`Resources::All`].
pub fn resource_urls(html: &[u8], page: &Url, scope: Resources) -> Vec<Url> {
    if scope == Resources::Off {
        return Vec::new();
    }
    let tokenizer = Tokenizer::new(Finder::default(), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(&String::from_utf8_lossy(html)));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let found = tokenizer.sink.0.take();
    let base = found
        .base
        .and_then(|b| page.join(b.trim()).ok())
        .unwrap_or_else(|| page.clone());
    let mut seen = HashSet::new();
    found
        .urls
        .iter()
        .filter_map(|u| base.join(u.trim()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|mut u| {
            u.set_fragment(None);
            u
        })
        .filter(|u| scope == Resources::All || same_origin(u, page))
        .filter(|u| seen.insert(u.as_str().to_string()))
        .take(MAX_PAGE_RESOURCES)
        .collect()
}

/// The tokenizer's sink: what the tags name, as written. A `RefCell` as html5ever hands the
/// sink out by shared reference.
#[derive(Default)]
struct Finder(RefCell<Found>);

#[derive(Default)]
struct Found {
    /// The first `<base href>`.
    base: Option<String>,
    /// Resource URLs, as written, in document order.
    urls: Vec<String>,
    /// In a `<picture>`, `<video>` or `<audio>`: whether its one source is taken already.
    media: Option<bool>,
    /// Depth of `<template>`s around: their content is inert.
    template: u32,
}

impl TokenSink for Finder {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let Token::TagToken(tag) = token else {
            return TokenSinkResult::Continue;
        };
        let mut found = self.0.borrow_mut();
        match tag.kind {
            TagKind::StartTag => found.start(&tag),
            TagKind::EndTag => found.end(&tag),
        }
        // What the tree builder would tell the tokenizer: these elements hold text, not tags.
        match (tag.kind, &*tag.name) {
            (TagKind::StartTag, "script") => TokenSinkResult::RawData(RawKind::ScriptData),
            (
                TagKind::StartTag,
                "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript",
            ) => TokenSinkResult::RawData(RawKind::Rawtext),
            (TagKind::StartTag, "textarea" | "title") => TokenSinkResult::RawData(RawKind::Rcdata),
            (TagKind::StartTag, "plaintext") => TokenSinkResult::Plaintext,
            _ => TokenSinkResult::Continue,
        }
    }
}

impl Found {
    fn start(&mut self, tag: &Tag) {
        let attr = |name: &str| {
            tag.attrs
                .iter()
                .find(|a| &*a.name.local == name)
                .map(|a| a.value.to_string())
        };
        match &*tag.name {
            "template" => self.template += 1,
            _ if self.template > 0 => {}
            "base" if self.base.is_none() => self.base = attr("href"),
            "link" if attr("rel").is_some_and(|rel| fetched_rel(&rel)) => self.push(attr("href")),
            "script" if attr("type").is_none_or(|t| script_type(&t)) => self.push(attr("src")),
            "picture" | "video" | "audio" => self.media = Some(false),
            "source" if self.media == Some(false) => {
                let url = chosen(attr("srcset"), attr("src"));
                if url.is_some() {
                    self.media = Some(true);
                }
                self.push(url);
            }
            "img" if self.media != Some(true) => {
                self.push(chosen(attr("srcset"), attr("src")));
                if self.media.is_some() {
                    self.media = Some(true);
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: &Tag) {
        match &*tag.name {
            "template" => self.template = self.template.saturating_sub(1),
            "picture" | "video" | "audio" => self.media = None,
            _ => {}
        }
    }

    fn push(&mut self, url: Option<String>) {
        if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
            self.urls.push(url);
        }
    }
}

/// A `<link rel>` a browser fetches as the page loads: a stylesheet (not an alternate one) or
/// an icon.
fn fetched_rel(rel: &str) -> bool {
    let has = |word: &str| {
        rel.split_ascii_whitespace()
            .any(|r| r.eq_ignore_ascii_case(word))
    };
    (has("stylesheet") && !has("alternate")) || has("icon")
}

/// A `<script type>` a browser runs (so fetches): a module or a JavaScript MIME type.
fn script_type(t: &str) -> bool {
    let t = t.trim().to_ascii_lowercase();
    t.is_empty() || t == "module" || t.contains("javascript") || t.contains("ecmascript")
}

/// The one image of an element: the largest `srcset` candidate (by width, else density), else
/// its `src`.
fn chosen(srcset: Option<String>, src: Option<String>) -> Option<String> {
    let candidates = srcset
        .map(|s| parse_srcset::parse_srcset(&s))
        .unwrap_or_default();
    let widest = candidates
        .iter()
        .filter(|c| c.width.is_some())
        .max_by_key(|c| c.width);
    let densest = candidates.iter().max_by(|a, b| {
        let d = |c: &parse_srcset::ImageCandidate| c.density.unwrap_or(1.0);
        d(a).total_cmp(&d(b))
    });
    widest.or(densest).map(|c| c.url.clone()).or(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(html: &str, page: &str, scope: Resources) -> Vec<String> {
        let page = Url::parse(page).unwrap();
        resource_urls(html.as_bytes(), &page, scope)
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn a_page_names_its_resources_in_order_once_each() {
        let html = r#"<!doctype html><html><head>
            <link rel="stylesheet" href="/css/site.css?v=1&amp;x=2">
            <link rel="alternate stylesheet" href="/css/alt.css">
            <link rel="Shortcut Icon" href="favicon.ico">
            <link rel="preconnect" href="/nothing">
            <script src="/js/app.js#top"></script>
            <script type="text/template" src="/js/not-run.js"></script>
            <script>var s = "<img src='/in-script.png'>";</script>
            <style>.x { background: url(/in-style.png) }</style>
            </head><body>
            <img src="/img/a.png">
            <img src="/img/small.png" srcset="/img/b-480.png 480w, /img/b-960.png 960w, /img/b-720.png 720w">
            <img srcset="/img/c.png, /img/c@3x.png 3x, /img/c@2x.png 2x">
            <picture><source srcset="/img/d.webp 1x, /img/d@2x.webp 2x" type="image/webp">
              <source srcset="/img/d.jxl"><img src="/img/d.png"></picture>
            <picture><img src="/img/e.png"></picture>
            <video><source src="/media/v.mp4"><source src="/media/v.webm"></video>
            <template><img src="/img/inert.png"></template>
            <noscript><img src="/img/noscript.png"></noscript>
            <!-- <img src="/img/comment.png"> -->
            <img src="/img/a.png">
            <img src="http://other.test/x.png"><img src="data:image/png;base64,AAAA">
            <img src="  ">
            </body></html>"#;
        assert_eq!(
            urls(
                html,
                "http://127.0.0.1:8/shop/page.html",
                Resources::SameOrigin
            ),
            [
                "http://127.0.0.1:8/css/site.css?v=1&x=2",
                "http://127.0.0.1:8/shop/favicon.ico",
                "http://127.0.0.1:8/js/app.js",
                "http://127.0.0.1:8/img/a.png",
                "http://127.0.0.1:8/img/b-960.png",
                "http://127.0.0.1:8/img/c@3x.png",
                "http://127.0.0.1:8/img/d@2x.webp",
                "http://127.0.0.1:8/img/e.png",
                "http://127.0.0.1:8/media/v.mp4",
            ]
        );
        let all = urls(html, "http://127.0.0.1:8/shop/page.html", Resources::All);
        assert_eq!(all.len(), 10);
        assert_eq!(all[9], "http://other.test/x.png");
        assert!(urls(html, "http://127.0.0.1:8/", Resources::Off).is_empty());
    }

    #[test]
    fn base_href_is_the_first_one_resolved_against_the_page() {
        let html = r#"<head><base href="/static/v2/"><base href="/other/">
            <script src="app.js"></script></head><img src="../logo.png">"#;
        assert_eq!(
            urls(html, "http://127.0.0.1:8/a/b", Resources::SameOrigin),
            [
                "http://127.0.0.1:8/static/v2/app.js",
                "http://127.0.0.1:8/static/logo.png"
            ]
        );
        // A base on another origin: the resources are on that origin, so not same-origin.
        let html = r#"<base href="http://cdn.test/"><img src="x.png">"#;
        assert!(urls(html, "http://127.0.0.1:8/", Resources::SameOrigin).is_empty());
    }

    #[test]
    fn a_hostile_page_is_bounded_and_broken_markup_does_not_stop_the_parse() {
        let mut html = String::from("<img src='/a.png' <<>> <img src=\"/b.png\"");
        for i in 0..1000 {
            html.push_str(&format!("<img src=/{i}.png>"));
        }
        let found = urls(&html, "http://127.0.0.1:8/", Resources::SameOrigin);
        assert_eq!(found.len(), MAX_PAGE_RESOURCES);
        assert_eq!(
            urls(
                "\u{0}<img src=/\u{fffd}.png>\u{ff}",
                "http://127.0.0.1:8/",
                Resources::All
            )
            .len(),
            1
        );
        let invalid_utf8 = b"<img src=\"/\xff\xfe.png\">";
        let page = Url::parse("http://127.0.0.1:8/").unwrap();
        assert_eq!(resource_urls(invalid_utf8, &page, Resources::All).len(), 1);
    }

    #[test]
    fn html_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_html(&h));
        h.insert(CONTENT_TYPE, "Text/HTML; charset=utf-8".parse().unwrap());
        assert!(is_html(&h));
        h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_html(&h));
    }
}
