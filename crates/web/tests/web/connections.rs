//! Slow and idle clients over raw loopback sockets: each is cut off when
//! its clock runs out, none keeps the server from answering others, and
//! the connection cap holds. Short limits keep these tests quick.

use crate::harness::*;
use stagehand_web::{ConnectionLimits, WebConfig};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER: Duration = Duration::from_millis(1000);
const BODY: Duration = Duration::from_millis(1500);
const IDLE: Duration = Duration::from_millis(2500);

fn quick(max_connections: usize) -> WebConfig {
    WebConfig {
        connections: ConnectionLimits {
            header_read: HEADER,
            body_read: BODY,
            idle: IDLE,
            max_connections,
        },
        ..WebConfig::default()
    }
}

/// Reads until the server closes the connection; what it sent first.
async fn until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut buf)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&buf).into_owned()),
        // Unread bytes on the server's side turn its close into a reset.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(String::new()),
        Ok(Err(e)) => panic!("read failed: {e}"),
        Err(_) => None,
    }
}

async fn healthz_within(app: &TestApp, within: Duration) -> bool {
    let asked = reqwest::Client::new().get(app.url("/healthz")).send();
    match tokio::time::timeout(within, asked).await {
        Ok(Ok(res)) => res.status() == 200,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_bodies_are_cut_off_and_starve_no_one() {
    let app = spawn_app_with(default_backend(), quick(1024)).await;
    let host = app.addr.to_string();
    let opened = Instant::now();
    let mut half_headers = Vec::new();
    let mut half_bodies = Vec::new();
    for _ in 0..60 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").as_bytes())
            .await
            .unwrap();
        half_headers.push(s);
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(
            format!(
                "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 1000\r\n\r\nusername=lena&password="
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        half_bodies.push(s);
    }
    // Others are answered at once, while 120 slow connections are open.
    assert!(healthz_within(&app, Duration::from_millis(500)).await);

    for mut s in half_headers {
        let answer = until_closed(&mut s, HEADER + Duration::from_secs(3)).await;
        assert!(
            answer.is_some(),
            "a half-sent header still holds its connection"
        );
    }
    let headers_done = opened.elapsed();
    assert!(
        headers_done >= HEADER - Duration::from_millis(100),
        "cut off before the header clock ran out: {headers_done:?}"
    );
    for mut s in half_bodies {
        let answer = until_closed(&mut s, BODY + Duration::from_secs(3))
            .await
            .expect("a half-sent body still holds its connection");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    assert!(opened.elapsed() >= BODY - Duration::from_millis(100));
    assert!(healthz_within(&app, Duration::from_millis(500)).await);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_may_idle_longer_than_a_header_takes_but_not_forever() {
    let app = spawn_app_with(default_backend(), quick(1024)).await;
    let host = app.addr.to_string();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..2 {
        s.write_all(request.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // Longer than the header clock, shorter than the idle one.
        tokio::time::sleep(HEADER + Duration::from_millis(300)).await;
    }
    let idle_since = Instant::now();
    let answer = until_closed(&mut s, IDLE + Duration::from_secs(3)).await;
    assert!(answer.is_some(), "an idle connection is kept forever");
    let idled = idle_since.elapsed() + HEADER + Duration::from_millis(300);
    assert!(idled >= IDLE - Duration::from_millis(100), "{idled:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let app = spawn_app_with(default_backend(), quick(8)).await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let asked = tokio::spawn({
        let url = app.url("/healthz");
        async move { reqwest::Client::new().get(url).send().await }
    });
    tokio::time::sleep(HEADER / 2).await;
    assert!(
        !asked.is_finished(),
        "a ninth connection was served at once"
    );
    // The silent ones are cut off by the header clock, which frees slots.
    let res = tokio::time::timeout(HEADER + Duration::from_secs(3), asked)
        .await
        .expect("the server stopped accepting for good")
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() < HEADER + Duration::from_secs(2));
    for mut s in silent {
        assert!(until_closed(&mut s, Duration::from_secs(2)).await.is_some());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish_and_accepts_no_more() {
    let app = spawn_app_with(default_backend(), quick(1024)).await;
    let addr = app.addr;
    let host = addr.to_string();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = "username=lena&password=x";
    s.write_all(
        format!(
            "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{}",
            body.len(),
            &body[..10]
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown did not wait for the request"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    s.write_all(&body.as_bytes()[10..]).await.unwrap();
    let answer = until_closed(&mut s, Duration::from_secs(3))
        .await
        .expect("the connection stays open after its request");
    // The form lacks its CSRF field: answered as such, not cut off.
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    tokio::time::timeout(Duration::from_secs(3), stopping)
        .await
        .expect("shutdown hangs")
        .unwrap();
}
