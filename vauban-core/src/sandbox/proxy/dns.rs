//! The DNS side of the egress proxy: each query relayed as it is to the
//! host's resolvers, the first answer that matches its id sent back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How long one resolver may take.
const TIMEOUT: Duration = Duration::from_secs(4);

/// Relays UDP queries until the process ends.
pub(super) async fn serve_udp(sock: UdpSocket, upstreams: Arc<Vec<SocketAddr>>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (sock, upstreams) = (sock.clone(), upstreams.clone());
        tokio::spawn(async move {
            if let Some(answer) = ask_udp(&query, &upstreams).await {
                let _ = sock.send_to(&answer, from).await;
            }
        });
    }
}

async fn ask_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    for up in upstreams {
        let local: SocketAddr = if up.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = UdpSocket::bind(local).await else {
            continue;
        };
        if sock.connect(up).await.is_err() || sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        if let Ok(Ok(n)) = tokio::time::timeout(TIMEOUT, sock.recv(&mut buf)).await {
            if n >= 12 && buf[..2] == query[..2] {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

/// Relays TCP queries (length-prefixed) until the process ends.
pub(super) async fn serve_tcp(listener: TcpListener, upstreams: Arc<Vec<SocketAddr>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let upstreams = upstreams.clone();
        tokio::spawn(async move {
            let _ = relay_tcp(client, &upstreams).await;
        });
    }
}

async fn relay_tcp(mut client: TcpStream, upstreams: &[SocketAddr]) -> std::io::Result<()> {
    loop {
        let len = client.read_u16().await? as usize;
        let mut query = vec![0u8; len];
        client.read_exact(&mut query).await?;
        let mut answered = false;
        for up in upstreams {
            let Ok(Ok(mut server)) = tokio::time::timeout(TIMEOUT, TcpStream::connect(up)).await
            else {
                continue;
            };
            let exchange = async {
                server.write_u16(len as u16).await?;
                server.write_all(&query).await?;
                let n = server.read_u16().await? as usize;
                let mut answer = vec![0u8; n];
                server.read_exact(&mut answer).await?;
                std::io::Result::Ok(answer)
            };
            if let Ok(Ok(answer)) = tokio::time::timeout(TIMEOUT, exchange).await {
                client.write_u16(answer.len() as u16).await?;
                client.write_all(&answer).await?;
                answered = true;
                break;
            }
        }
        if !answered {
            return Ok(());
        }
    }
}
