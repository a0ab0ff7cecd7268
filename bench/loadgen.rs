//! The load generator of `bench/serve.sh`: `concurrency` keep-alive HTTP/1.1 connections, each
//! sending the same request again and again for `seconds`, on tokio (so the client is not the
//! bottleneck a Python client would be on two cores). Prints one JSON line: requests per
//! second, latency percentiles, and the count of answers other than 200.
//!
//! `cargo run --release --example loadgen -- ADDR METHOD PATH BODY CONCURRENCY SECONDS`
//!
//! BODY is a file, `-` (none), or for a mixed load `FILE:STATUS,FILE:STATUS,…`: the bodies are
//! sent in turn, and an answer other than its STATUS counts as `unexpected` (a good request that
//! failed, or a bad one that was not refused as it should be).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response from `stream` (Content-Length bodies), returning its status.
async fn response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, method, path, body, concurrency, seconds] = &args[..] else {
        eprintln!("usage: loadgen ADDR METHOD PATH BODY_FILE|-|FILE:STATUS,... CONCURRENCY SECONDS");
        std::process::exit(2);
    };
    // (request bytes, the status it should get)
    let requests: Vec<(Vec<u8>, u16)> = body
        .split(',')
        .map(|item| {
            let (file, status) = match item.rsplit_once(':') {
                Some((f, s)) if s.parse::<u16>().is_ok() => (f, s.parse().unwrap()),
                _ => (item, 200),
            };
            let body = if file == "-" { Vec::new() } else { std::fs::read(file).expect("the body file") };
            let mut request = format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend(&body);
            (request, status)
        })
        .collect();
    let concurrency: usize = concurrency.parse().expect("CONCURRENCY");
    let duration = Duration::from_secs_f64(seconds.parse().expect("SECONDS"));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|c| {
            let (addr, requests) = (addr.clone(), requests.clone());
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(&addr).await.expect("connect");
                stream.set_nodelay(true).unwrap();
                let (mut latencies, mut bad, mut buf) = (Vec::new(), 0usize, Vec::new());
                let mut turn = c;
                while start.elapsed() < duration {
                    let (request, want) = &requests[turn % requests.len()];
                    turn += 1;
                    let t = Instant::now();
                    stream.write_all(request).await.expect("send");
                    match response(&mut stream, &mut buf).await {
                        Ok(status) if status == *want => latencies.push(t.elapsed().as_secs_f64() * 1e3),
                        Ok(_) => bad += 1,
                        Err(_) => {
                            bad += 1;
                            stream = TcpStream::connect(&addr).await.expect("reconnect");
                        }
                    }
                }
                (latencies, bad)
            })
        })
        .collect();
    let (mut all, mut bad) = (Vec::new(), 0);
    for t in tasks {
        let (l, b) = t.await.unwrap();
        all.extend(l);
        bad += b;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
    };
    println!(
        "{{\"concurrency\":{concurrency},\"requests_per_s\":{:.1},\"as_expected\":{},\"unexpected\":{bad},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        all.len() as f64 / elapsed,
        all.len(),
        pct(0.5),
        pct(0.99)
    );
}
