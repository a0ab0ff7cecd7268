//! Mutation fuzzing of every reader of outside bytes, on stable Rust: each
//! target starts from a valid fixture and feeds the reader mutated copies
//! (bit flips, byte changes to boundary values, insertions, deletions,
//! truncations, duplicated and spliced chunks, digits swapped for huge numbers)
//! drawn from a seeded generator. The property: the reader returns a value or
//! an error, never panics, and never asks for one allocation beyond the
//! budget (gmu's budget is set to half of [`ALLOCATION_CAP`]; this test
//! binary's allocator refuses anything over the cap, which aborts the run and
//! fails the test loudly).
//!
//! Budget: `GMU_FUZZ_SECONDS` per target (default 8, what CI runs; give more
//! by hand), `GMU_FUZZ_SEED` for the generator (default 0). Each target
//! prints how many inputs it tried and how many the reader accepted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The largest single allocation a reader may ask for while fuzzed: far
/// beyond any fixture, far below what a lying header would request.
const ALLOCATION_CAP: usize = 1 << 30;

struct Capped;

thread_local! {
    /// The last request this thread's reader made over the cap, for the fuzz loop to report
    /// with its input (const-initialised: no allocation inside the allocator).
    static REFUSED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn refuse(size: usize) -> *mut u8 {
    REFUSED.with(|r| r.set(size));
    std::ptr::null_mut()
}

// SAFETY: forwards to the system allocator; refusing (null) is allowed by GlobalAlloc.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_CAP {
            return refuse(layout.size());
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_CAP {
            return refuse(layout.size());
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_CAP {
            return refuse(new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn budget() -> Duration {
    let seconds = std::env::var("GMU_FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(8.0);
    Duration::from_secs_f64(seconds)
}

fn seed() -> u64 {
    std::env::var("GMU_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// One mutation of `bytes`.
fn mutate(bytes: &mut Vec<u8>, rng: &mut StdRng) {
    const INTERESTING: [u8; 12] = [0, 1, 0x7f, 0x80, 0xff, b',', b'\n', b'"', b'-', b'9', b'.', b'e'];
    let n = bytes.len();
    match rng.random_range(0..9) {
        0 if n > 0 => {
            let i = rng.random_range(0..n);
            bytes[i] ^= 1 << rng.random_range(0..8);
        }
        1 if n > 0 => {
            let i = rng.random_range(0..n);
            bytes[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
        }
        2 => {
            let i = rng.random_range(0..=n);
            bytes.insert(i, rng.random());
        }
        3 if n > 0 => {
            let i = rng.random_range(0..n);
            let len = rng.random_range(1..=(n - i).min(16));
            bytes.drain(i..i + len);
        }
        4 => {
            let keep = rng.random_range(0..=n);
            bytes.truncate(keep);
        }
        5 if n > 1 => {
            // Duplicate a chunk somewhere else.
            let a = rng.random_range(0..n);
            let len = rng.random_range(1..=(n - a).min(64));
            let chunk = bytes[a..a + len].to_vec();
            let at = rng.random_range(0..=bytes.len());
            bytes.splice(at..at, chunk);
        }
        6 if n > 0 => {
            // A run of digits becomes a huge or negative number.
            let i = rng.random_range(0..n);
            if bytes[i].is_ascii_digit() {
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                let big: &[u8] =
                    [&b"18446744073709551615"[..], b"99999999999999999999999", b"-1", b"0", b"4611686018427387904"]
                        [rng.random_range(0..5)];
                bytes.splice(i..j, big.iter().copied());
            }
        }
        7 if n > 3 => {
            // Overwrite four bytes with a little-endian boundary integer (binary headers).
            let i = rng.random_range(0..n - 3);
            let v: u32 = [0, 1, u32::MAX, 0x7fff_ffff, 0x8000_0000, 4096][rng.random_range(0..6)];
            bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            let i = rng.random_range(0..=n);
            bytes.insert(i, INTERESTING[rng.random_range(0..INTERESTING.len())]);
        }
    }
}

/// Runs `read` on mutated copies of `fixture` (written to `path`) for the
/// budget; returns (inputs tried, inputs accepted). A panic fails the test,
/// with the input saved beside the test's temporary folder for replay.
fn fuzz(name: &str, fixture: &[u8], path: &Path, read: &dyn Fn(&Path) -> bool) -> (usize, usize) {
    // gmu's own size checks must stop a lying header below the allocator's cap.
    gmu::budget::set_budget(ALLOCATION_CAP as u64 / 2);
    let mut rng =
        StdRng::seed_from_u64(seed() ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let start = Instant::now();
    let (mut tried, mut accepted) = (0, 0);
    // The fixture itself must be accepted: the target reads what it should.
    std::fs::write(path, fixture).unwrap();
    assert!(read(path), "{name}: the valid fixture is refused");
    while start.elapsed() < budget() {
        let mut bytes = fixture.to_vec();
        for _ in 0..rng.random_range(1..=8) {
            mutate(&mut bytes, &mut rng);
        }
        std::fs::write(path, &bytes).unwrap();
        // Saved first: an abort (an allocation refused outside a fallible path) leaves it behind.
        let keep = std::env::temp_dir().join(format!("gmu-fuzz-{name}-last"));
        std::fs::write(&keep, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| read(path)));
        let refused = REFUSED.with(|r| r.replace(0));
        assert!(
            refused == 0,
            "{name}: input {tried} asked for {refused} bytes in one allocation (saved to {})",
            keep.display()
        );
        match outcome {
            Ok(ok) => accepted += usize::from(ok),
            Err(_) => panic!("{name}: the reader panicked on input {tried} (saved to {})", keep.display()),
        }
        tried += 1;
    }
    eprintln!("fuzz {name}: {tried} inputs in {:.1} s, {accepted} accepted, no panic", start.elapsed().as_secs_f64());
    // A slow machine must not pass by trying next to nothing.
    assert!(tried >= 20, "{name}: only {tried} inputs in {:?}", budget());
    (tried, accepted)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Reads a whole view file through the chunked reader, two rows at a time.
fn read_streamed(path: &Path, label_column: Option<&str>) -> bool {
    let Ok(mut s) = gmu::data::stream::ViewStream::open(path, label_column) else { return false };
    loop {
        match s.next_chunk(2) {
            Ok((v, _)) if v.is_empty() => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[test]
fn fuzz_csv_views_and_the_chunked_reader() {
    let dir = tempfile::tempdir().unwrap();
    let csv = b"x,y,label\n1,2,cat\n3,,dog\n5.5,-6e3,cat\nNaN,7,dog\n".to_vec();
    fuzz("csv-view", &csv, &dir.path().join("v.csv"), &|p| gmu::data::multiview::read_view(p, Some("label")).is_ok());
    fuzz("csv-stream", &csv, &dir.path().join("s.csv"), &|p| read_streamed(p, Some("label")));
}

#[test]
fn fuzz_npy_views() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = gmu::io::npy::npy_bytes(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    fuzz("npy-view", &bytes, &dir.path().join("v.npy"), &|p| gmu::data::multiview::read_view(p, None).is_ok());
    fuzz("npy-stream", &bytes, &dir.path().join("s.npy"), &|p| read_streamed(p, None));
}

#[test]
fn fuzz_label_files() {
    let dir = tempfile::tempdir().unwrap();
    fuzz("labels-column", b"genre\ndrama|comedy\nhorror\ndrama\n", &dir.path().join("a.csv"), &|p| {
        gmu::data::multiview::read_label_file(p).is_ok()
    });
    fuzz("labels-multihot", b"drama,comedy,horror\n1,0,1\n0,1,0\n", &dir.path().join("b.csv"), &|p| {
        gmu::data::multiview::read_label_file(p).is_ok()
    });
    let npy_labels = gmu::io::npy::npy_bytes(&[4], &[0.0, 1.0, 2.0, 1.0]);
    fuzz("labels-npy", &npy_labels, &dir.path().join("c.npy"), &|p| gmu::data::multiview::read_label_file(p).is_ok());
}

#[test]
fn fuzz_synthetic_csv() {
    let dir = tempfile::tempdir().unwrap();
    fuzz("synthetic-csv", b"v0,v1,t0,t1,c,m\n1,2,3,4,0,1\n-1.5,2e3,0,0,1,0\n", &dir.path().join("s.csv"), &|p| {
        gmu::data::table::read_csv(p).is_ok()
    });
}

#[test]
fn fuzz_mmimdb_hdf5() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["mmimdb_contiguous.h5", "mmimdb_chunked.h5"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        fuzz(name, &bytes, &dir.path().join("m.hdf5"), &|p| gmu::data::mmimdb::read_hdf5(p).is_ok());
        // the variable-length `sequences` (global-heap references) as the text view
        let sequences =
            |p: &Path| gmu::data::mmimdb::read_hdf5_text(p, gmu::data::mmimdb::TextView::Sequences, 16).is_ok();
        fuzz(&format!("{name}:sequences"), &bytes, &dir.path().join("s.hdf5"), &sequences);
    }
}

#[test]
fn fuzz_raw_archive_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("dataset")).unwrap();
    let movies = [
        (
            "0000001",
            r#"{"title": "A", "year": 1999, "plot": ["Short one.", "A longer plot."], "genres": ["Drama", "News", "Comedy"]}"#,
        ),
        ("0000002", r#"{"title": "B", "plot": ["Only plot."], "genres": ["Horror"]}"#),
        ("0000003", r#"{"title": "C", "plot": ["Third."], "genres": ["Film-Noir"]}"#),
    ];
    for (id, json) in movies {
        std::fs::write(root.join("dataset").join(format!("{id}.json")), json).unwrap();
        std::fs::write(root.join("dataset").join(format!("{id}.jpeg")), b"\xff\xd8\xff\xe0").unwrap();
    }
    let split = br#"{"train": ["0000001"], "dev": ["0000002"], "test": ["0000003"]}"#;
    std::fs::write(root.join("split.json"), split).unwrap();
    let read = |_: &Path| gmu::data::mmimdb::read_archive(root).is_ok();
    fuzz("archive-split", split, &root.join("split.json"), &read);
    std::fs::write(root.join("split.json"), split).unwrap();
    fuzz("archive-movie", movies[0].1.as_bytes(), &root.join("dataset/0000001.json"), &read);
}

#[test]
fn fuzz_model_directory() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let v1 = fixture("model_v1/mfeat-gmu");
    std::fs::create_dir_all(&model).unwrap();
    let weights = std::fs::read(v1.join("model-0.safetensors")).unwrap();
    std::fs::write(model.join("model-0.safetensors"), &weights).unwrap();
    let config = std::fs::read(v1.join("config.json")).unwrap();
    let device = burn::tensor::Device::default();
    let load = |_: &Path| gmu::store::load(&model, &device).is_ok();
    fuzz("config-json", &config, &model.join("config.json"), &load);
    std::fs::write(model.join("config.json"), &config).unwrap();
    fuzz("safetensors", &weights, &model.join("model-0.safetensors"), &load);
}

/// Issue 20: the model-directory loader from a config of today's format
/// (format 2, with its checksum list), and the image decoder on a JPEG and a
/// PNG: no panic, no allocation past the cap, whatever the bytes.
#[test]
fn fuzz_model_directory_format_2() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let v2 = fixture("model_v2/mfeat-gmu");
    std::fs::create_dir_all(&model).unwrap();
    let weights = std::fs::read(v2.join("model-0.safetensors")).unwrap();
    std::fs::write(model.join("model-0.safetensors"), &weights).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v2.join("config.json")).unwrap()).unwrap();
    use sha2::Digest;
    let sum: String = sha2::Sha256::digest(&weights).iter().map(|b| format!("{b:02x}")).collect();
    config["weights_sha256"] = serde_json::json!([sum]);
    let config = serde_json::to_vec_pretty(&config).unwrap();
    let device = burn::tensor::Device::default();
    let load = |_: &Path| gmu::store::load(&model, &device).is_ok();
    fuzz("config-json-v2", &config, &model.join("config.json"), &load);
}

#[test]
fn fuzz_image_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let decode = |p: &Path| gmu::encoders::image::decode(p).is_ok();
    let jpeg = std::fs::read(fixture("encoders/cmyk.jpg")).unwrap();
    fuzz("image-jpeg", &jpeg, &dir.path().join("poster.jpg"), &decode);
    let mut png = Vec::new();
    image::RgbImage::from_fn(40, 56, |x, y| image::Rgb([(x * 6) as u8, (y * 4) as u8, 90]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    fuzz("image-png", &png, &dir.path().join("poster.png"), &decode);
}
