//! A loopback HTTP/1.1 proxy in front of a registry that injects faults (500,
//! 429, dropped or corrupted responses, redirects, a Bearer token gate) and
//! records every request with its body size.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request seen by the proxy.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Bytes of the request body.
    pub body_bytes: u64,
    /// Status answered (0 if none).
    pub status: u16,
}

/// Faults to inject, each consumed by the first matching request.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answer 500 to the next N requests whose path contains the string.
    pub fail: Vec<(String, u32)>,
    /// Close the connection of the next matching request after reading this
    /// many bytes of its body (an upload cut short), answering nothing.
    pub cut_request: Vec<(String, u64)>,
    /// Answer the next matching request with `307` to this `Location`.
    pub redirect: Vec<(String, String)>,
    /// Answer 429 with `Retry-After: 1` to the next N matching requests.
    pub throttle: Vec<(String, u32)>,
    /// Cut the next matching response after this many body bytes.
    pub drop_after: Vec<(String, u64)>,
    /// Flip a byte in the body of every matching response.
    pub corrupt: Vec<String>,
    /// Bearer mode: every request needs `Authorization: Bearer <token>` from
    /// the proxy's own `/token` endpoint (the registry behind is open).
    pub bearer: bool,
    /// Tokens issued and still valid.
    pub tokens: Vec<String>,
    /// Tokens issued so far.
    pub issued: u32,
    /// Invalidate every token when the next N requests matching the pattern arrive.
    pub expire_on: Vec<(String, u32)>,
}

/// A loopback HTTP/1.1 proxy in front of a registry (one request per
/// connection), injecting [`Faults`] and recording every request.
pub struct FaultProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Faults to inject.
    pub faults: Arc<Mutex<Faults>>,
    /// Requests seen.
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (f, s) = (faults.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (f, s) = (f.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, upstream, &f, &s);
                });
            }
        });
        FaultProxy { port, faults, seen }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Forgets the requests seen so far.
    pub fn reset(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Total request-body bytes sent to the registry.
    pub fn uploaded_bytes(&self) -> u64 {
        self.seen().iter().map(|s| s.body_bytes).sum()
    }
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Copies a request body (Content-Length or chunked) from `r` to `w`; returns
/// the payload size.
fn relay_body(head: &[String], r: &mut impl BufRead, w: &mut impl Write) -> std::io::Result<u64> {
    if header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut total = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            w.write_all(line.as_bytes())?;
            let n = u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| std::io::Error::other("bad chunk"))?;
            let mut chunk = vec![0u8; n as usize + 2];
            r.read_exact(&mut chunk)?;
            w.write_all(&chunk)?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }
    let n: u64 = header(head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::io::copy(&mut r.take(n), w)
}

/// Removes and returns the first entry whose pattern is in `path`.
fn take_match<T>(list: &mut Vec<(String, T)>, path: &str) -> Option<T> {
    let i = list.iter().position(|(p, _)| path.contains(p.as_str()))?;
    Some(list.remove(i).1)
}

/// Counts down the first entry with a count left whose pattern is in `path`;
/// whether there was one.
fn take_counted(list: &mut [(String, u32)], path: &str) -> bool {
    match list
        .iter_mut()
        .find(|(p, n)| *n > 0 && path.contains(p.as_str()))
    {
        Some((_, n)) => {
            *n -= 1;
            true
        }
        None => false,
    }
}

/// Records a request and the status it got.
fn record(seen: &Mutex<Vec<Seen>>, method: &str, path: &str, body_bytes: u64, status: u16) {
    seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.to_string(),
        body_bytes,
        status,
    });
}

/// Reads and drops the request body, answers `HTTP/1.1 {status} {rest}`
/// (`rest`: the reason phrase, then any header lines) with an empty body;
/// returns the request body's size.
fn answer_empty(
    head: &[String],
    reader: &mut impl BufRead,
    client: &mut TcpStream,
    status: u16,
    rest: &str,
) -> std::io::Result<u64> {
    let body = relay_body(head, reader, &mut std::io::sink())?;
    write!(
        client,
        "HTTP/1.1 {status} {rest}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    Ok(body)
}

fn handle(
    client: TcpStream,
    upstream: u16,
    faults: &Mutex<Faults>,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client_w = client;
    let head = read_head(&mut reader)?;
    let mut parts = head[0].split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();

    if let Some(done) = bearer_gate(
        &head,
        &method,
        &path,
        &mut reader,
        &mut client_w,
        faults,
        seen,
    )? {
        return Ok(done);
    }
    // Counted first: a request cut short still uses up a 500.
    let fail = take_counted(&mut faults.lock().unwrap().fail, &path);
    let cut = take_match(&mut faults.lock().unwrap().cut_request, &path);
    if let Some(n) = cut {
        let got = std::io::copy(&mut (&mut reader).take(n), &mut std::io::sink())?;
        let _ = client_w.shutdown(Shutdown::Both);
        record(seen, &method, &path, got, 0);
        return Ok(());
    }
    // Faults the proxy answers itself, without asking the registry.
    let answer: Option<(u16, String)> = {
        let mut f = faults.lock().unwrap();
        if let Some(location) = take_match(&mut f.redirect, &path) {
            Some((307, format!("Temporary Redirect\r\nLocation: {location}")))
        } else if take_counted(&mut f.throttle, &path) {
            Some((429, "Too Many Requests\r\nRetry-After: 1".into()))
        } else if fail {
            Some((500, "Internal Server Error".into()))
        } else {
            None
        }
    };
    if let Some((status, rest)) = answer {
        let body = answer_empty(&head, &mut reader, &mut client_w, status, &rest)?;
        record(seen, &method, &path, body, status);
        return Ok(());
    }

    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut up_head = String::new();
    for (i, l) in head.iter().enumerate() {
        let lower = l.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("authorization: bearer"))
        {
            continue;
        }
        up_head.push_str(l);
        up_head.push_str("\r\n");
    }
    up_head.push_str("Connection: close\r\n\r\n");
    up.write_all(up_head.as_bytes())?;
    let body_bytes = relay_body(&head, &mut reader, &mut up)?;

    let mut up_r = BufReader::new(up);
    let resp_head = read_head(&mut up_r)?;
    let status: u16 = resp_head[0]
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    record(seen, &method, &path, body_bytes, status);

    let (drop_after, corrupt) = {
        let mut f = faults.lock().unwrap();
        let d = if method == "GET" {
            take_match(&mut f.drop_after, &path)
        } else {
            None
        };
        (
            d,
            method == "GET" && f.corrupt.iter().any(|p| path.contains(p.as_str())),
        )
    };
    let mut out = String::new();
    for (i, l) in resp_head.iter().enumerate() {
        if i > 0 && l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    client_w.write_all(out.as_bytes())?;
    let mut body = Vec::new();
    up_r.read_to_end(&mut body)?;
    if corrupt && !body.is_empty() {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    match drop_after {
        Some(n) if (n as usize) < body.len() => {
            client_w.write_all(&body[..n as usize])?;
            client_w.flush()?;
            let _ = client_w.shutdown(Shutdown::Both);
        }
        _ => client_w.write_all(&body)?,
    }
    Ok(())
}

/// In bearer mode, answers `/token` and refuses requests without a valid
/// token (401 with a Bearer challenge); `Some(())` when it answered.
fn bearer_gate(
    head: &[String],
    method: &str,
    path: &str,
    reader: &mut impl BufRead,
    client: &mut TcpStream,
    faults: &Mutex<Faults>,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<Option<()>> {
    let mut f = faults.lock().unwrap();
    if !f.bearer {
        return Ok(None);
    }
    let host = header(head, "host").unwrap_or("").to_string();
    if path.starts_with("/token") {
        f.issued += 1;
        let token = format!("tok-{}", f.issued);
        f.tokens.push(token.clone());
        let body = format!("{{\"token\":\"{token}\",\"expires_in\":300}}");
        write!(client, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
        record(seen, method, path, 0, 200);
        return Ok(Some(()));
    }
    if take_counted(&mut f.expire_on, path) {
        f.tokens.clear();
    }
    let ok = header(head, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| f.tokens.iter().any(|k| k == t));
    if ok {
        return Ok(None);
    }
    drop(f);
    let challenge =
        format!("Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{host}/token\",service=\"vauban-test\"");
    let body = answer_empty(head, reader, client, 401, &challenge)?;
    record(seen, method, path, body, 401);
    Ok(Some(()))
}
