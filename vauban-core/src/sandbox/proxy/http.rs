//! The HTTP side of the egress proxy: `http://` requests forwarded in
//! origin form (one upstream connection kept per client connection while
//! the client asks the same host), `CONNECT host:port` tunnelled byte for
//! byte (TLS stays end to end). Every destination is resolved here and
//! checked against the rules before a connection is made.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper::header::{HeaderName, HeaderValue, CONNECTION, HOST};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use super::policy::Egress;

type Body = BoxBody<Bytes, hyper::Error>;

/// One client connection's upstream: the `host:port` it is connected to.
type Upstream = Arc<Mutex<Option<(String, client::SendRequest<Incoming>)>>>;

/// How long a connection to a destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Headers of one hop only, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Accepts the sandbox's connections until the process ends.
pub(super) async fn serve(listener: TcpListener, rules: Arc<Egress>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let rules = rules.clone();
        tokio::spawn(async move {
            let upstream: Upstream = Arc::new(Mutex::new(None));
            let service = hyper::service::service_fn(move |req| {
                let rules = rules.clone();
                let upstream = upstream.clone();
                async move { Ok::<_, Infallible>(handle(req, &rules, &upstream).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .preserve_header_case(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(req: Request<Incoming>, rules: &Egress, upstream: &Upstream) -> Response<Body> {
    if req.method() == Method::CONNECT {
        tunnel(req, rules).await
    } else {
        forward(req, rules, upstream).await
    }
}

/// `CONNECT host:port`: a tunnel once the destination is allowed.
async fn tunnel(req: Request<Incoming>, rules: &Egress) -> Response<Body> {
    let Some(authority) = req.uri().authority().cloned() else {
        return refusal(StatusCode::BAD_REQUEST, "CONNECT needs host:port".into());
    };
    let port = authority.port_u16().unwrap_or(443);
    let mut upstream = match dial(rules, authority.host(), port, true).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let mut client = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    });
    Response::new(empty())
}

/// An `http://` request in absolute form, forwarded in origin form.
async fn forward(
    mut req: Request<Incoming>,
    rules: &Egress,
    upstream: &Upstream,
) -> Response<Body> {
    let uri = req.uri().clone();
    if uri.scheme_str() != Some("http") {
        return refusal(
            StatusCode::BAD_REQUEST,
            "only http:// URLs are forwarded (https:// goes through CONNECT)".into(),
        );
    }
    let Some(authority) = uri.authority().cloned() else {
        return refusal(StatusCode::BAD_REQUEST, "a URL without a host".into());
    };
    let host = authority.host().to_string();
    let port = authority.port_u16().unwrap_or(80);
    let origin = uri.path_and_query().map_or("/", |pq| pq.as_str());
    *req.uri_mut() = origin
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    strip_hop_by_hop(req.headers_mut());
    if !req.headers().contains_key(HOST) {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(HOST, v);
        }
    }
    let key = format!("{host}:{port}");
    let mut slot = upstream.lock().await;
    let kept = match slot.take() {
        Some((k, mut sender)) if k == key => sender.ready().await.ok().map(|()| sender),
        _ => None,
    };
    let mut sender = match kept {
        Some(s) => s,
        None => {
            let stream = match dial(rules, &host, port, false).await {
                Ok(s) => s,
                Err(resp) => return resp,
            };
            match client::handshake(TokioIo::new(stream)).await {
                Ok((sender, conn)) => {
                    tokio::spawn(conn);
                    sender
                }
                Err(e) => return refusal(StatusCode::BAD_GATEWAY, format!("{key}: {e}")),
            }
        }
    };
    match sender.send_request(req).await {
        Ok(mut resp) => {
            *slot = Some((key, sender));
            strip_hop_by_hop(resp.headers_mut());
            resp.map(|b| b.boxed())
        }
        Err(e) => refusal(StatusCode::BAD_GATEWAY, format!("{key}: {e}")),
    }
}

/// Removes the hop-by-hop headers, those the `Connection` header names too.
fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// A connection to `host:port` if the rules allow one of its addresses; the
/// response to give otherwise (the refusal is said on standard error too:
/// the build's log shows it).
async fn dial(
    rules: &Egress,
    host: &str,
    port: u16,
    tunnel: bool,
) -> Result<TcpStream, Response<Body>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let by_name = rules.allows_name(bare, port);
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((bare, port)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                return Err(refusal(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot resolve {bare}: {e}"),
                ))
            }
        },
    };
    let mut refused = None;
    let mut failed = None;
    for addr in addrs {
        if !by_name {
            if let Err(why) = rules.check(addr.ip(), port, tunnel) {
                refused = Some((addr, why));
                continue;
            }
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => failed = Some(format!("{addr}: {e}")),
            Err(_) => failed = Some(format!("{addr}: timed out")),
        }
    }
    if let Some(failed) = failed {
        return Err(refusal(StatusCode::BAD_GATEWAY, failed));
    }
    let message = match refused {
        Some((addr, why)) => format!(
            "refused {bare}:{port} ({addr} is {why}); allow it with `--network-allow` \
             or `network_allow:` in config.yml"
        ),
        None => format!("{bare} has no address"),
    };
    eprintln!("vauban: the build's network: {message}");
    Err(refusal(StatusCode::FORBIDDEN, message))
}

fn refusal(status: StatusCode, message: String) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(format!("vauban: {message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}
