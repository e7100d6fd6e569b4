//! Serving one blob of the store as a file, as a boot firmware and dracut's
//! curl expect of a web server: `ETag` (the digest: a blob never changes),
//! `Last-Modified`, `HEAD`, `If-None-Match`, one `Range` (`bytes=A-B`,
//! `A-`, `-N`; several ranges get the whole file, as RFC 9110 allows) with
//! `If-Range`, streamed from the file in large reads (memory flat in the
//! file's size and the clients' number), each response's bytes counted and
//! told to `done` when the body ends or is dropped, whether the file's last
//! byte went out. tower-http's `ServeFile` does ranges but can neither count
//! what was delivered nor use the digest as the validator: hence this.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::Stream;

/// How much one read takes (and one chunk of the body holds): hyper queues
/// up to ~400 KiB of a body per connection, so this bounds what a client
/// holds to about two chunks.
const CHUNK: usize = 256 * 1024;

/// What a response sent, told once when its body is over.
pub type Done = Box<dyn FnOnce(u64, bool) + Send>;

/// How a file may be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// As any static file: conditions and ranges honoured.
    AsFile,
    /// Whole or not at all (a conffs, handed over once): `Range`,
    /// `If-Range` and `If-None-Match` are ignored, so no part of it goes
    /// out without the whole being counted, and no 304 uses it up.
    WholeOnly,
}

/// The response for `file` (the blob `etag` names), `done` told what went
/// out (not for `HEAD`, a 304 or a 416).
pub fn respond(
    method: &Method,
    headers: &HeaderMap,
    file: File,
    etag: &str,
    name: &str,
    asked: Asked,
    done: Done,
) -> Response {
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => {
            // Nothing went out: told so (a claimed conffs is given back).
            done(0, false);
            return plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("stat: {e}"));
        }
    };
    let size = meta.len();
    let quoted = format!("\"{etag}\"");
    let modified = meta
        .modified()
        .map(httpdate::fmt_http_date)
        .unwrap_or_default();
    let mut builder = Response::builder()
        .header(header::ETAG, &quoted)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        )
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        );
    if !modified.is_empty() {
        builder = builder.header(header::LAST_MODIFIED, &modified);
    }
    let header_str = |h: header::HeaderName| {
        if asked == Asked::WholeOnly {
            return None;
        }
        headers.get(h).and_then(|v| v.to_str().ok())
    };
    if header_str(header::IF_NONE_MATCH).is_some_and(|v| etag_matches(v, &quoted)) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    let range_applies = header_str(header::IF_RANGE).is_none_or(|v| v.trim() == quoted);
    let range = match header_str(header::RANGE).filter(|_| range_applies) {
        None => None,
        Some(r) => match parse_range(r, size) {
            RangeAsked::Whole => None,
            RangeAsked::One(a, b) => Some((a, b)),
            RangeAsked::Unsatisfiable => {
                return builder
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                    .body(Body::empty())
                    .unwrap_or_default();
            }
        },
    };
    let (status, start, len) = match range {
        Some((a, b)) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{size}"));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        None => (StatusCode::OK, 0, size),
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(len));
    if method == Method::HEAD {
        return builder.body(Body::empty()).unwrap_or_default();
    }
    let reaches_end = start + len == size;
    let body = FileBody {
        file,
        offset: start,
        left: len,
        sent: 0,
        reaches_end,
        done: Some(done),
    };
    builder.body(Body::from_stream(body)).unwrap_or_default()
}

/// A short text answer.
pub fn plain(status: StatusCode, text: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(format!("{text}\n")))
        .unwrap_or_default()
}

fn etag_matches(header: &str, quoted: &str) -> bool {
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == quoted)
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeAsked {
    Whole,
    One(u64, u64),
    Unsatisfiable,
}

fn parse_range(value: &str, size: u64) -> RangeAsked {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsked::Whole;
    };
    if spec.contains(',') {
        return RangeAsked::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsked::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeAsked::Whole,
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeAsked::Unsatisfiable,
            Ok(n) => Some((size.saturating_sub(n), size.saturating_sub(1))),
            Err(_) => return RangeAsked::Whole,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeAsked::Whole;
            };
            let end = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(e) if e >= start => e.min(size.saturating_sub(1)),
                    _ => return RangeAsked::Whole,
                }
            };
            Some((start, end))
        }
    };
    match parsed {
        Some((a, b)) if size > 0 && a < size && a <= b => RangeAsked::One(a, b),
        _ => RangeAsked::Unsatisfiable,
    }
}

/// The body: `left` bytes of `file` from `offset`, read in the poll itself:
/// a blob being served is in the page cache (it was just built or fetched
/// by another client), where a read costs less than a hop to the blocking
/// pool and back (a third of the CPU per byte in the boot bench). A cold
/// blob's read blocks a runtime worker for the read's time.
struct FileBody {
    file: File,
    offset: u64,
    left: u64,
    sent: u64,
    reaches_end: bool,
    done: Option<Done>,
}

impl Stream for FileBody {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.left == 0 {
            this.finish();
            return Poll::Ready(None);
        }
        let want = this.left.min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        let n = match read_full_at(&this.file, &mut buf, this.offset) {
            Ok(0) => return Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into()))),
            Ok(n) => n,
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        buf.truncate(n);
        this.offset += n as u64;
        this.left -= n as u64;
        this.sent += n as u64;
        Poll::Ready(Some(Ok(Bytes::from(buf))))
    }
}

impl FileBody {
    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            let complete = self.left == 0 && self.reaches_end;
            done(self.sent, complete);
        }
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        // The server drops a body once its length went out, without asking
        // for its end; a client that went away mid-file drops it early:
        // what it got is recorded either way.
        self.finish();
    }
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAsked::One(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeAsked::One(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeAsked::One(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), RangeAsked::One(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), RangeAsked::One(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsked::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsked::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAsked::Whole);
        assert_eq!(parse_range("bytes=9-1", 100), RangeAsked::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeAsked::Whole);
        assert_eq!(parse_range("bytes=x-1", 100), RangeAsked::Whole);
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }
}
