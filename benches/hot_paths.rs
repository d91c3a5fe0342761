//! Micro-benchmarks of the hot pure functions: code validation and hashing, token-answer
//! parsing, sealing and opening a token, rendering a record. `cargo bench --bench hot_paths`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mondiapay_token_proxy::crypto::Keyring;
use mondiapay_token_proxy::domain::Code;
use mondiapay_token_proxy::http::public::query;
use mondiapay_token_proxy::mondiapay::read_answer;

const ANSWER: &[u8] = br#"{"access_token":"U0123456789abcdefghijklmnopqrstuvwx","token_type":"bearer","expires_in":"43200","refresh_token":"R0123456789abcdefghijklmnopqrstuvwx"}"#;
const REDIRECT: &str =
    "ref=ORDER-42&code=Adb74b75-1234-abcd-1234-abcd1234abcd&message=OK&uuid=8142ab&status=200";

fn hot_paths(c: &mut Criterion) {
    let keys = Keyring::new(&[7; 32]);
    let code = Code::parse("Adb74b75-1234-abcd-1234-abcd1234abcd", "A").unwrap();
    let sealed = keys.seal(ANSWER, b"tok_AAAAAAAAAAAAAAAAAAAAAA");

    c.bench_function("callback query parse", |b| {
        b.iter(|| query::parse(black_box(REDIRECT), "ref"))
    });
    c.bench_function("code validation", |b| {
        b.iter(|| Code::parse(black_box("Adb74b75-1234-abcd-1234-abcd1234abcd"), "A"))
    });
    c.bench_function("code keyed hash", |b| {
        b.iter(|| keys.hash_code(black_box(&code)))
    });
    c.bench_function("token answer parse", |b| {
        b.iter(|| read_answer(200, black_box(ANSWER)))
    });
    c.bench_function("seal token", |b| {
        b.iter(|| keys.seal(black_box(ANSWER), b"tok_AAAAAAAAAAAAAAAAAAAAAA"))
    });
    c.bench_function("open token", |b| {
        b.iter(|| keys.open(black_box(&sealed), b"tok_AAAAAAAAAAAAAAAAAAAAAA"))
    });
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
