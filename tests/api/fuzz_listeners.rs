//! Hostile requests over raw TCP against both listeners, from a fixed seed: odd methods,
//! encodings, versions, paths that are not UTF-8, huge request lines, too many headers, broken
//! framing and garbage. Whatever comes back is in the listener's own form.

use std::net::SocketAddr;

use bounded::each_at_most;

use crate::helpers::*;
use crate::raw_http::{SECURITY_HEADERS, send_raw};

/// xorshift64*: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "get",
    "G\u{7f}T", "BREW", "CONNECT",
];
const PUBLIC_PATHS: &[&str] = &[
    "/oauth/callback",
    "/oauth/result/",
    "/oauth/result/res_x",
    "/healthz",
    "/",
    "/v1/tokens",
];
const INTERNAL_PATHS: &[&str] = &[
    "/v1/exchange",
    "/v1/tokens",
    "/v1/tokens/",
    "/v1/tokens/tok_x",
    "/v1/callbacks",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/nope",
];
const SUFFIXES: &[&[u8]] = &[
    b"",
    b"",
    b"%FF",
    b"%00",
    b"%C3%28",
    b"\xC3\x28",
    b"/%2e%2e/%2e%2e/etc/passwd",
    b"//x",
    b"%",
    b"%zz",
    b"\xff\xfe",
    b"/a/b/c",
];
const VERSIONS: &[&str] = &[
    "HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "", "http/1.1",
];
const QUERY_PARTS: &[&[u8]] = &[
    b"code=B0bad",
    b"code=",
    b"code=%FF",
    b"code=B1&code=B2",
    b"error=INSUFFICIENT_FUNDS&ref=ORDER-F",
    b"error=%00",
    b"ref=%E2%80%AE",
    b"status=999",
    b"message=%3Cscript%3E",
    b"uuid=\xff",
    b"ref=ORDER-1&ref=ORDER-2",
    b"=&&=",
];

fn hostile_request(rng: &mut Rng, internal: bool) -> Vec<u8> {
    if rng.chance(4) {
        let len = 1 + rng.below(300);
        let mut garbage = rng.bytes(len);
        garbage.extend_from_slice(b"\r\n\r\n");
        return garbage;
    }
    let mut request = rng.pick(METHODS).as_bytes().to_vec();
    request.push(b' ');
    let paths = if internal {
        INTERNAL_PATHS
    } else {
        PUBLIC_PATHS
    };
    request.extend_from_slice(rng.pick(paths).as_bytes());
    request.extend_from_slice(rng.pick(SUFFIXES));
    if rng.chance(50) {
        request.push(b'?');
        for n in 0..1 + rng.below(3) {
            if n > 0 {
                request.push(b'&');
            }
            request.extend_from_slice(rng.pick(QUERY_PARTS));
        }
        match rng.below(20) {
            0 => request.extend_from_slice(&b"&x=".repeat(1500)),
            1 => request.extend_from_slice(&b"y".repeat(70 * 1024)),
            _ => {}
        }
    }
    request.push(b' ');
    request.extend_from_slice(rng.pick(VERSIONS).as_bytes());
    request.extend_from_slice(b"\r\nHost: proxy\r\nConnection: close\r\n");
    if internal && rng.chance(70) {
        request.extend_from_slice(format!("Authorization: Bearer {API_KEY}\r\n").as_bytes());
    }
    let extra_headers = match rng.below(10) {
        0 => 95 + rng.below(20),
        1 => 150 + rng.below(200),
        _ => rng.below(5),
    };
    for n in 0..extra_headers {
        request.extend_from_slice(format!("X-Fuzz-{n}: {}\r\n", rng.next()).as_bytes());
    }
    match rng.below(25) {
        0 => request.extend_from_slice(b"no colon on this line\r\n"),
        1 => request.extend_from_slice(b"Content-Length: 5\r\nContent-Length: 7\r\n"),
        2 => request.extend_from_slice(b"Transfer-Encoding: gzip, chunked, identity\r\n"),
        3 => request.extend_from_slice(b"X-Request-Id: <script>\r\n"),
        4 => request.extend_from_slice(b"Bad Name: x\r\n"),
        5 => request.extend_from_slice(b"X-Ctl: a\x01b\r\n"),
        6 => request.extend_from_slice(format!("X-Big: {}\r\n", "b".repeat(20_000)).as_bytes()),
        _ => {}
    }
    let body: Vec<u8> = match rng.below(6) {
        0 => br#"{"code": "B0bad"}"#.to_vec(),
        1 => b"{\"code\": \"\xff\"}".to_vec(),
        2 => {
            let len = rng.below(64);
            rng.bytes(len)
        }
        _ => Vec::new(),
    };
    if !body.is_empty() {
        if rng.chance(50) {
            request.extend_from_slice(b"Content-Type: application/json\r\n");
        }
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(&body);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_listeners_answer_hostile_requests_in_their_own_form() {
    let app = spawn_app_with(
        "PUBLIC__RATE_LIMIT_PER_SECOND=0 \
         PUBLIC__HEADER_READ_TIMEOUT_SECS=2 INTERNAL__HEADER_READ_TIMEOUT_SECS=2 \
         PUBLIC__REQUEST_TIMEOUT_SECS=2 INTERNAL__REQUEST_TIMEOUT_SECS=2 \
         PUBLIC__IDLE_TIMEOUT_SECS=5 INTERNAL__IDLE_TIMEOUT_SECS=5",
    )
    .await;
    let public: SocketAddr = app.public.trim_start_matches("http://").parse().unwrap();
    let internal: SocketAddr = app.internal.trim_start_matches("http://").parse().unwrap();
    // A fixed seed: the same requests on every run.
    let mut rng = Rng(0x5EED_F022_0913_u64);
    let requests: Vec<(bool, Vec<u8>)> = (0..4000)
        .map(|n| {
            let to_internal = n % 2 == 1;
            (to_internal, hostile_request(&mut rng, to_internal))
        })
        .collect();
    let answers = each_at_most(requests, 16, move |(to_internal, request)| async move {
        let address = if to_internal { internal } else { public };
        let answer = send_raw(address, &request).await;
        (to_internal, request, answer)
    })
    .await;
    let mut answered = 0;
    for (to_internal, request, answer) in answers {
        let Some(answer) = answer else { continue };
        answered += 1;
        let shown = String::from_utf8_lossy(&request[..request.len().min(200)]).into_owned();
        assert!(answer.status < 500, "{shown:?} → {answer:?}");
        if to_internal {
            if answer.status >= 400 {
                assert!(answer.is_problem(), "{shown:?} → {answer:?}");
            }
        } else {
            assert!(
                SECURITY_HEADERS.iter().all(|h| answer.header(h).is_some()),
                "{shown:?} → {answer:?}"
            );
            if answer.status >= 400 && !answer.body.is_empty() {
                assert!(answer.is_page(), "{shown:?} → {answer:?}");
            }
            if answer.status >= 400 && !request.starts_with(b"HEAD ") {
                assert!(!answer.body.is_empty(), "{shown:?} → {answer:?}");
            }
        }
    }
    assert!(
        answered > 3500,
        "most hostile requests get an answer: {answered}"
    );
    // The service keeps answering, and no bad code ever reached MondiaPay.
    for base in [&app.public, &app.internal] {
        let health = app.http_get(&format!("{base}/healthz")).await;
        assert_eq!(health.status(), reqwest::StatusCode::OK);
    }
    assert!(app.mondiapay.calls().await.is_empty());
}

mod bounded {
    //! Runs `f` over `items`, at most `width` at a time, keeping the order of the results.

    use std::future::Future;

    pub async fn each_at_most<T, R, F, Fut>(items: Vec<T>, width: usize, f: F) -> Vec<R>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(T) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(width));
        let mut tasks = Vec::with_capacity(items.len());
        for item in items {
            let permit = gate.clone().acquire_owned().await.unwrap();
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let result = f(item).await;
                drop(permit);
                result
            }));
        }
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    }
}
