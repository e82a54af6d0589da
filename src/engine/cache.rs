//! A user's cache of page resources, kept as a browser's private cache keeps it: freshness
//! from `Cache-Control` (`max-age`, `no-cache`, `no-store`), `Expires` and `Age`, and a stale
//! copy revalidated with `If-None-Match` (its `ETag`) and `If-Modified-Since` (its
//! `Last-Modified`). The rules are `http-cache-semantics`'s (RFC 9111); only the headers those
//! rules read are kept, never a body (a load test needs the answer's cost, not its bytes).
//!
//! One departure from browsers, on purpose: no heuristic freshness. A browser may reuse an
//! answer without `max-age` or `Expires` for a tenth of its `Last-Modified` age, which makes
//! the load depend on the dates of the files served; here such an answer is revalidated on
//! every visit, so the server sees the conditional requests it would have to answer at worst.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use url::Url;

/// Resources one user keeps at most; when full, stale entries make room, and then nothing new
/// is kept (a bound on memory per user whatever the pages name).
const MAX_ENTRIES: usize = 512;

/// The response headers the caching rules read; the others are not kept.
const KEPT: [&str; 8] = [
    "cache-control",
    "expires",
    "date",
    "age",
    "etag",
    "last-modified",
    "pragma",
    "vary",
];

/// One user's resources, by URL.
#[derive(Default)]
pub(super) struct Cache {
    entries: HashMap<String, CachePolicy>,
}

/// What the cache says about a resource before it is requested.
#[derive(Debug, PartialEq)]
pub(super) enum Lookup {
    /// A fresh copy: used without a request.
    Fresh,
    /// Request it with these headers: the validators of a stale copy, or none.
    Send(Vec<(HeaderName, HeaderValue)>),
}

/// How an answer changed the cache.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stored {
    /// A `304 Not Modified` confirmed the kept copy.
    Revalidated,
    /// Anything else (kept when the rules allow it, dropped otherwise).
    Replaced,
}

impl Cache {
    /// Whether `url` can be used as kept, or what to send for it, at `now`.
    pub(super) fn lookup(&self, url: &Url, now: SystemTime) -> Lookup {
        let Some(policy) = self.entries.get(url.as_str()) else {
            return Lookup::Send(Vec::new());
        };
        match policy.before_request(&request(url), now) {
            BeforeRequest::Fresh(_) => Lookup::Fresh,
            BeforeRequest::Stale { request, .. } => Lookup::Send(
                request
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect(),
            ),
        }
    }

    /// Takes in the answer (`status`, `headers`) to a request for `url` received at `now`.
    pub(super) fn answered(
        &mut self,
        url: &Url,
        status: StatusCode,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Stored {
        let req = request(url);
        let res = response(status, headers);
        if status == StatusCode::NOT_MODIFIED {
            if let Some(old) = self.entries.get_mut(url.as_str()) {
                if let AfterResponse::NotModified(policy, _) = old.after_response(&req, &res, now) {
                    *old = policy;
                    return Stored::Revalidated;
                }
            }
        }
        let policy = CachePolicy::new_options(&req, &res, now, options());
        if policy.is_storable() && self.room(now) {
            self.entries.insert(url.as_str().to_string(), policy);
        } else {
            self.entries.remove(url.as_str());
        }
        Stored::Replaced
    }

    /// True when a new entry fits, after stale ones made room if needed.
    fn room(&mut self, now: SystemTime) -> bool {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, p| !p.is_stale(now));
        }
        self.entries.len() < MAX_ENTRIES
    }
}

/// A private (one user's) cache without heuristic freshness (see the module's doc).
fn options() -> CacheOptions {
    CacheOptions {
        shared: false,
        cache_heuristic: 0.0,
        immutable_min_time_to_live: Duration::from_secs(24 * 3600),
        ..CacheOptions::default()
    }
}

/// The request the rules see for `url`: a plain GET. The same each time, so that a `Vary` on
/// headers the engine sends identically to every resource (`Accept-Encoding`) matches.
fn request(url: &Url) -> Request<()> {
    let mut req = Request::new(());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = Uri::try_from(url.as_str()).unwrap_or_default();
    req
}

/// The answer the rules see: its status and the headers they read.
fn response(status: StatusCode, headers: &HeaderMap) -> Response<()> {
    let mut res = Response::new(());
    *res.status_mut() = status;
    for name in KEPT {
        for value in headers.get_all(name) {
            res.headers_mut().append(name, value.clone());
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in list {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn sent(lookup: Lookup) -> Vec<(String, String)> {
        match lookup {
            Lookup::Fresh => panic!("fresh, not sent"),
            Lookup::Send(h) => h
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect(),
        }
    }

    #[test]
    fn max_age_is_fresh_until_it_passes() {
        let url = Url::parse("http://127.0.0.1:1/app.css").unwrap();
        let t0 = SystemTime::now();
        let mut cache = Cache::default();
        assert_eq!(cache.lookup(&url, t0), Lookup::Send(vec![]));
        let h = headers(&[("cache-control", "max-age=60"), ("etag", "\"v1\"")]);
        assert_eq!(
            cache.answered(&url, StatusCode::OK, &h, t0),
            Stored::Replaced
        );
        assert_eq!(
            cache.lookup(&url, t0 + Duration::from_secs(59)),
            Lookup::Fresh
        );
        let later = sent(cache.lookup(&url, t0 + Duration::from_secs(61)));
        assert_eq!(later, [("if-none-match".into(), "\"v1\"".into())]);
    }

    #[test]
    fn validators_without_freshness_are_revalidated_each_time() {
        let url = Url::parse("http://127.0.0.1:1/logo.png").unwrap();
        let t0 = SystemTime::now();
        let mut cache = Cache::default();
        let lm = "Mon, 01 Jan 2024 00:00:00 GMT";
        let h = headers(&[("etag", "\"abc\""), ("last-modified", lm)]);
        cache.answered(&url, StatusCode::OK, &h, t0);
        // Years old, yet not fresh: no heuristic freshness.
        let mut asked = sent(cache.lookup(&url, t0));
        asked.sort();
        assert_eq!(
            asked,
            [
                ("if-modified-since".to_string(), lm.to_string()),
                ("if-none-match".to_string(), "\"abc\"".to_string())
            ]
        );
        let not_modified = headers(&[("etag", "\"abc\"")]);
        assert_eq!(
            cache.answered(&url, StatusCode::NOT_MODIFIED, &not_modified, t0),
            Stored::Revalidated
        );
        assert!(matches!(cache.lookup(&url, t0), Lookup::Send(h) if !h.is_empty()));
    }

    #[test]
    fn no_store_and_no_cache() {
        let t0 = SystemTime::now();
        let mut cache = Cache::default();
        let a = Url::parse("http://127.0.0.1:1/a.js").unwrap();
        let h = headers(&[("cache-control", "no-store"), ("etag", "\"1\"")]);
        cache.answered(&a, StatusCode::OK, &h, t0);
        assert_eq!(cache.lookup(&a, t0), Lookup::Send(vec![]));
        let b = Url::parse("http://127.0.0.1:1/b.js").unwrap();
        let h = headers(&[
            ("cache-control", "no-cache, max-age=600"),
            ("etag", "\"2\""),
        ]);
        cache.answered(&b, StatusCode::OK, &h, t0);
        assert_eq!(
            sent(cache.lookup(&b, t0)),
            [("if-none-match".into(), "\"2\"".into())]
        );
        // A 404 drops what was kept.
        let h = headers(&[("cache-control", "max-age=600")]);
        cache.answered(&b, StatusCode::OK, &h, t0);
        assert_eq!(cache.lookup(&b, t0), Lookup::Fresh);
        cache.answered(&b, StatusCode::NOT_FOUND, &HeaderMap::new(), t0);
        assert_eq!(cache.lookup(&b, t0), Lookup::Send(vec![]));
    }

    #[test]
    fn the_cache_is_bounded() {
        let t0 = SystemTime::now();
        let mut cache = Cache::default();
        let h = headers(&[("cache-control", "max-age=600")]);
        for i in 0..MAX_ENTRIES + 10 {
            let url = Url::parse(&format!("http://127.0.0.1:1/{i}.png")).unwrap();
            cache.answered(&url, StatusCode::OK, &h, t0);
        }
        assert_eq!(cache.entries.len(), MAX_ENTRIES);
    }
}
