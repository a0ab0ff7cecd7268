//! `gmu serve` end to end: the real binary on a free port, spoken to over
//! plain HTTP/1.1 (the protocol's JSON and binary forms), its answers checked
//! number for number against `gmu predict` on the same rows.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/model_v2/mfeat-gmu");

/// A running `gmu serve`, killed when dropped; its standard output (the JSON log) collected.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gmu"))
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let addr = loop {
            let mut line = String::new();
            if err.read_line(&mut line).unwrap() == 0 {
                panic!("gmu serve exited before listening: {seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let server = Server { child, addr, log };
        let start = Instant::now();
        while server.get("/v2/health/ready").0 != 200 {
            assert!(start.elapsed() < Duration::from_secs(60), "never ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn get(&self, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        http(&self.addr, "GET", path, &[], b"")
    }

    fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, _, body) = http(&self.addr, "POST", path, &[], body.to_string().as_bytes());
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange on a fresh connection: status, headers, body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading the whole body and close.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {raw:?}"));
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.lines();
    let status: u16 = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v == "chunked") {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 4 + size..];
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `n` rows of the fixture model's views (fou 76, zer 47), deterministic; row 3 and 7 lack zer, row 11 lacks fou.
fn rows(n: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let value =
        |r: usize, c: usize, salt: usize| (((r * 7919 + c * 104_729 + salt) % 2000) as f32 / 500.0 - 2.0) * 100.0;
    let mut fou: Vec<Vec<f32>> = (0..n).map(|r| (0..76).map(|c| value(r, c, 1)).collect()).collect();
    let mut zer: Vec<Vec<f32>> = (0..n).map(|r| (0..47).map(|c| value(r, c, 5) / 100.0 + 0.5).collect()).collect();
    for r in [3, 7] {
        zer[r].fill(f32::NAN);
    }
    fou[11].fill(f32::NAN);
    (fou, zer)
}

/// What `gmu predict --json` writes for those rows, one object per row.
fn predicted_by_the_cli(dir: &Path, fou: &[Vec<f32>], zer: &[Vec<f32>]) -> Vec<Value> {
    let csv = |rows: &[Vec<f32>]| {
        let header: Vec<String> = (0..rows[0].len()).map(|c| format!("c{c}")).collect();
        let lines = rows.iter().map(|r| {
            if r[0].is_nan() {
                ",".repeat(r.len() - 1)
            } else {
                r.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
            }
        });
        std::iter::once(header.join(",")).chain(lines).collect::<Vec<_>>().join("\n") + "\n"
    };
    let (a, b) = (dir.join("fou.csv"), dir.join("zer.csv"));
    std::fs::write(&a, csv(fou)).unwrap();
    std::fs::write(&b, csv(zer)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gmu"))
        .args(["predict", "--model", FIXTURE, "--files"])
        .arg(format!("{},{}", a.display(), b.display()))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn json_rows(rows: &[Vec<f32>]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| Value::Array(r.iter().map(|&x| if x.is_nan() { Value::Null } else { json!(x) }).collect()))
            .collect(),
    )
}

/// An f32 from a JSON number or null (NaN).
fn f(v: &Value) -> f32 {
    v.as_f64().map_or(f32::NAN, |x| x as f32)
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Checks a response's outputs (name → flat values, as f32; predicted as strings) against the CLI's rows `lo..`.
fn check_against_cli(outputs: &std::collections::HashMap<String, Vec<Value>>, cli: &[Value], lo: usize, what: &str) {
    let labels: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    let n = outputs["predicted"].len();
    for i in 0..n {
        let want = &cli[lo + i];
        for (c, l) in labels.iter().enumerate() {
            let got = f(&outputs["probabilities"][i * 10 + c]);
            assert!(
                same(got, f(&want[format!("p_{l}")])),
                "{what}: row {}: p_{l} {got} vs {}",
                lo + i,
                want[format!("p_{l}")]
            );
        }
        let predicted: Vec<&str> = want["predicted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(outputs["predicted"][i].as_str().unwrap(), predicted.join("|"), "{what}: row {}", lo + i);
        for view in ["fou", "zer"] {
            for col in ["gate", "share", "importance", "conflict"] {
                let key = format!("{col}_{view}");
                let got = f(&outputs[&key][i]);
                assert!(same(got, f(&want[&key])), "{what}: row {}: {key} {got} vs {}", lo + i, want[&key]);
            }
            let present = outputs[&format!("present_{view}")][i].as_bool().unwrap();
            assert_eq!(
                present,
                !want[format!("share_{view}")].is_null() || !want[format!("gate_{view}")].is_null(),
                "{what}: row {}",
                lo + i
            );
        }
    }
}

/// A JSON response's outputs by name.
fn by_name(response: &Value) -> std::collections::HashMap<String, Vec<Value>> {
    response["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap().to_string(), o["data"].as_array().unwrap().clone()))
        .collect()
}

fn infer_json(fou: &[Vec<f32>], zer: &[Vec<f32>], id: &str) -> Value {
    json!({
        "id": id,
        "inputs": [
            {"name": "fou", "shape": [fou.len(), 76], "datatype": "FP32", "data": json_rows(fou)},
            {"name": "zer", "shape": [zer.len(), 47], "datatype": "FP32", "data": json_rows(zer)},
        ]
    })
}

#[test]
fn serve_answers_the_protocol_with_gmu_predicts_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (fou, zer) = rows(40);
    let cli = predicted_by_the_cli(dir.path(), &fou, &zer);
    let server = Server::start(&["--model", FIXTURE, "--name", "mfeat", "--max-delay-ms", "5", "--threads", "2"]);

    // health, server and model metadata
    assert_eq!(server.get("/v2/health/live").0, 200);
    let (status, _, body) = server.get("/v2");
    let meta: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, &meta["extensions"][0], &meta["models"][0]["name"]),
        (200, &json!("binary_tensor_data"), &json!("mfeat"))
    );
    let (status, _, body) = server.get("/v2/models/mfeat");
    let meta: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        meta["inputs"],
        json!([{"name": "fou", "datatype": "FP32", "shape": [-1, 76]}, {"name": "zer", "datatype": "FP32", "shape": [-1, 47]}])
    );
    assert_eq!(meta["outputs"][0], json!({"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}));
    assert_eq!(meta["versions"], json!(["2"]));
    assert_eq!(server.get("/v2/models/mfeat/versions/2").0, 200);
    assert_eq!(server.get("/v2/models/mfeat/versions/7").0, 404);
    assert_eq!(server.get("/v2/models/mfeat/ready").0, 200);
    let (status, _, page) = server.get("/");
    assert!(status == 200 && String::from_utf8_lossy(&page).contains("<title>gmu serve</title>"));

    // JSON: every row, every output, the CLI's numbers bit for bit
    let (status, response) = server.post_json("/v2/models/mfeat/infer", &infer_json(&fou, &zer, "all"));
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        (&response["id"], &response["model_name"], &response["model_version"]),
        (&json!("all"), &json!("mfeat"), &json!("2"))
    );
    check_against_cli(&by_name(&response), &cli, 0, "JSON");

    // a missing view is an input not sent
    let (status, response) = server.post_json(
        "/v2/models/mfeat/infer",
        &json!({"inputs": [{"name": "fou", "shape": [2, 76], "datatype": "FP32", "data": json_rows(&fou[..2])}]}),
    );
    assert_eq!(status, 200, "{response}");
    let out = by_name(&response);
    assert_eq!(out["present_zer"], vec![json!(false), json!(false)]);
    assert!(out["gate_zer"].iter().all(Value::is_null) && out["importance_fou"].iter().all(Value::is_null));

    // a subset of outputs
    let mut request = infer_json(&fou[..3], &zer[..3], "some");
    request["outputs"] = json!([{"name": "share_zer"}, {"name": "probabilities"}]);
    let (_, response) = server.post_json("/v2/models/mfeat/infer", &request);
    let names: Vec<&str> =
        response["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["share_zer", "probabilities"]);

    // binary tensors both ways
    let head = json!({
        "inputs": [
            {"name": "fou", "shape": [40, 76], "datatype": "FP32", "parameters": {"binary_data_size": 40 * 76 * 4}},
            {"name": "zer", "shape": [40, 47], "datatype": "FP32", "parameters": {"binary_data_size": 40 * 47 * 4}},
        ],
        "parameters": {"binary_data_output": true}
    })
    .to_string();
    let mut body = head.clone().into_bytes();
    for x in fou.iter().chain(&zer).flatten() {
        body.extend(x.to_le_bytes());
    }
    let (status, headers, answer) = http(
        &server.addr,
        "POST",
        "/v2/models/mfeat/infer",
        &[("Inference-Header-Content-Length", head.len().to_string())],
        &body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let json_len: usize = header(&headers, "inference-header-content-length").expect("binary outputs").parse().unwrap();
    let meta: Value = serde_json::from_slice(&answer[..json_len]).unwrap();
    let mut at = json_len;
    let mut outputs = std::collections::HashMap::new();
    for o in meta["outputs"].as_array().unwrap() {
        let size = o["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        let bytes = &answer[at..at + size];
        at += size;
        let values: Vec<Value> = match o["datatype"].as_str().unwrap() {
            "FP32" => bytes
                .chunks(4)
                .map(|b| {
                    let x = f32::from_le_bytes(b.try_into().unwrap());
                    if x.is_nan() { Value::Null } else { json!(x) }
                })
                .collect(),
            "BOOL" => bytes.iter().map(|&b| json!(b == 1)).collect(),
            _ => {
                let mut items = Vec::new();
                let mut rest = bytes;
                while !rest.is_empty() {
                    let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                    items.push(json!(std::str::from_utf8(&rest[4..4 + len]).unwrap()));
                    rest = &rest[4 + len..];
                }
                items
            }
        };
        outputs.insert(o["name"].as_str().unwrap().to_string(), values);
    }
    assert_eq!(at, answer.len());
    check_against_cli(&outputs, &cli, 0, "binary");

    // concurrent one-row requests are batched, and every answer is still the CLI's
    let addr = server.addr.clone();
    let (fou, zer, cli) = (Arc::new(fou), Arc::new(zer), Arc::new(cli));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (addr, fou, zer, cli) = (addr.clone(), fou.clone(), zer.clone(), cli.clone());
            std::thread::spawn(move || {
                for r in (t..40).step_by(8) {
                    let body = infer_json(&fou[r..r + 1], &zer[r..r + 1], &format!("row{r}")).to_string();
                    let (status, _, answer) = http(&addr, "POST", "/v2/models/mfeat/infer", &[], body.as_bytes());
                    assert_eq!(status, 200);
                    check_against_cli(&by_name(&serde_json::from_slice(&answer).unwrap()), &cli, r, "batched");
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    let metrics = String::from_utf8(server.get("/metrics").2).unwrap();
    let count = |key: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    let (single, passes) = (count("gmu_batch_rows_bucket{le=\"1\"}"), count("gmu_batch_rows_count"));
    assert!(single < passes, "no pass batched two requests: {single} one-row passes of {passes}");
    assert!(count("gmu_requests_total{model=\"mfeat\",status=\"200\"}") >= 44.0);
    assert!(metrics.contains("gmu_queue_depth{model=\"mfeat\"} 0"));
    // one JSON log line per inference request
    let log = server.log.lock().unwrap().clone();
    let lines: Vec<Value> = log.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let all = lines.iter().find(|l| l["id"] == "all").expect("the request's id in the log");
    assert_eq!((&all["model"], &all["rows"], &all["status"]), (&json!("mfeat"), &json!(40), &json!(200)));
    assert!(all["ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn serve_refuses_bad_requests_by_name_and_stays_up() {
    let server = Server::start(&["--model", FIXTURE, "--name", "m", "--max-body-mb", "1", "--max-rows", "10"]);
    let (fou, zer) = rows(12);
    let url = "/v2/models/m/infer";
    let good = infer_json(&fou[..2], &zer[..2], "g");
    let mut partial = good.clone();
    partial["inputs"][0]["data"][1][5] = Value::Null;
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"inputs": [{"name": "fou", "shape": [1, 76], "datatype": "INT32", "data": [0]}]}),
            400,
            "input 'fou': datatype INT32",
        ),
        (
            json!({"inputs": [{"name": "fou", "shape": [1, 75], "datatype": "FP32", "data": vec![0.0; 75]}]}),
            400,
            "input 'fou': shape [1, 75], but the view has 76 features",
        ),
        (
            json!({"inputs": [{"name": "fou", "shape": [2, 76], "datatype": "FP32", "data": vec![0.0; 76]}]}),
            400,
            "input 'fou': 76 values in 'data' for a shape of 152",
        ),
        (
            json!({"inputs": [{"name": "kar", "shape": [1, 64], "datatype": "FP32", "data": vec![0.0; 64]}]}),
            400,
            "input 'kar' is not a view of model 'm' (it reads 'fou' FP32 [rows, 76], 'zer' FP32 [rows, 47])",
        ),
        (
            json!({"inputs": [{"name": "fou", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}),
            400,
            "input 'fou': BYTES for a view of 76 features",
        ),
        (json!({"inputs": []}), 400, "the request has no inputs"),
        (
            json!({"outputs": [{"name": "gate_kar"}], "inputs": good["inputs"]}),
            400,
            "output 'gate_kar' is not one model 'm' gives",
        ),
        (partial, 400, "view 'fou', row 1, column 5: a missing cell in a row that is not entirely missing"),
        (
            json!({"inputs": [good["inputs"][0].clone(), {"name": "zer", "shape": [1, 47], "datatype": "FP32", "data": vec![0.0; 47]}]}),
            400,
            "input 'zer' has 1 rows, input 'fou' has 2",
        ),
        (
            json!({"inputs": [{"name": "fou", "shape": [1, 76], "datatype": "FP32", "data": vec![Value::Null; 76]}]}),
            400,
            "row 0: every view is missing",
        ),
        (infer_json(&fou[..11], &zer[..11], "big"), 413, "11 rows in one request; the limit is 10 (--max-rows)"),
    ];
    for (body, status, message) in cases {
        let (got, answer) = server.post_json(url, &body);
        assert_eq!(got, status, "{message}: {answer}");
        let error = answer["error"].as_str().unwrap_or_else(|| panic!("an error message for {message}: {answer}"));
        assert!(error.contains(message), "{error}\n  lacks: {message}");
    }
    // malformed JSON, a wrong header, an infinity in binary, an unknown model, a too-large body
    let (status, _, body) = http(&server.addr, "POST", url, &[], b"{\"inputs\": [");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not valid JSON"));
    let (status, _, _) = http(&server.addr, "POST", url, &[("Inference-Header-Content-Length", "abc".into())], b"{}");
    assert_eq!(status, 400);
    let head = r#"{"inputs":[{"name":"zer","shape":[1,47],"datatype":"FP32","parameters":{"binary_data_size":188}}]}"#;
    let mut body = head.as_bytes().to_vec();
    for c in 0..47 {
        body.extend(if c == 9 { f32::INFINITY } else { 0.5 }.to_le_bytes());
    }
    let (status, _, answer) =
        http(&server.addr, "POST", url, &[("Inference-Header-Content-Length", head.len().to_string())], &body);
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&answer).contains("input 'zer': value 9 (row 0, column 9) is inf"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (status, answer) = server.post_json("/v2/models/nope/infer", &good);
    assert_eq!(status, 404);
    assert!(answer["error"].as_str().unwrap().contains("unknown model 'nope'; this server has m"));
    assert_eq!(server.get("/v2/models/nope").0, 404);
    assert_eq!(server.get("/v2/nothing/here").0, 404);
    let huge = vec![b' '; 2 << 20];
    let (status, _, answer) = http(&server.addr, "POST", url, &[], &huge);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&answer));

    // mutated requests, JSON and binary: each gets an answer (200, 400 or 413), never a 5xx or a dead server
    let seeds: Vec<Vec<u8>> = vec![good.to_string().into_bytes(), body.clone()];
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..400 {
        let mut case = seeds[i % 2].clone();
        for _ in 0..1 + next() % 6 {
            let at = (next() as usize) % case.len().max(1);
            match next() % 4 {
                0 if !case.is_empty() => case[at] = next() as u8,
                1 => case.truncate(at),
                2 => case.insert(at, b"{}[],:\"0e9-"[(next() % 11) as usize]),
                _ => {
                    if !case.is_empty() {
                        case.remove(at);
                    }
                }
            }
        }
        let headers =
            if i % 2 == 1 { vec![("Inference-Header-Content-Length", head.len().to_string())] } else { vec![] };
        let (status, _, answer) = http(&server.addr, "POST", url, &headers, &case);
        assert!(matches!(status, 200 | 400 | 413), "case {i}: {status} {}", String::from_utf8_lossy(&answer));
        if status != 200 {
            let e: Value = serde_json::from_slice(&answer).unwrap();
            assert!(e["error"].is_string());
        }
    }
    // the files the fuzz tests feed the readers, sent as bodies
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut sent = 0;
    for entry in walk(&fuzz) {
        let bytes = std::fs::read(&entry).unwrap();
        let (status, _, _) = http(&server.addr, "POST", url, &[], &bytes[..bytes.len().min(1 << 19)]);
        assert!(matches!(status, 400 | 413), "{}: {status}", entry.display());
        sent += 1;
    }
    assert!(sent > 0, "no fuzz fixture found in {}", fuzz.display());
    let (status, answer) = server.post_json(url, &good);
    assert_eq!(status, 200, "after everything, a good request: {answer}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}

/// A server on the fixture that takes large requests on one thread (`extra` flags added),
/// and the JSON of a request of `n` rows that keeps its batcher busy for a while.
fn busy_server(extra: &[&str], n: usize) -> (Server, String) {
    let flags = ["--model", FIXTURE, "--name", "m", "--max-rows", "100000", "--max-body-mb", "256", "--threads", "1"];
    let server = Server::start(&[&flags[..], extra].concat());
    let (fou, zer) = rows(12);
    let (big_fou, big_zer): (Vec<Vec<f32>>, Vec<Vec<f32>>) =
        (0..n).map(|r| (fou[r % 2].clone(), zer[r % 2].clone())).unzip();
    (server, infer_json(&big_fou, &big_zer, "big").to_string())
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    // One forward pass of many rows keeps the batcher busy while small requests arrive.
    let (server, big) = busy_server(&["--max-queue", "1"], 40_000);
    let (fou, zer) = rows(12);
    let addr = server.addr.clone();
    let heavy = std::thread::spawn(move || http(&addr, "POST", "/v2/models/m/infer", &[], big.as_bytes()).0);
    let small = infer_json(&fou[..1], &zer[..1], "s").to_string();
    let start = Instant::now();
    let mut busy = None;
    while busy.is_none() && start.elapsed() < Duration::from_secs(60) && !heavy.is_finished() {
        let addr = server.addr.clone();
        let answers: Vec<_> = (0..6)
            .map(|_| {
                let (addr, small) = (addr.clone(), small.clone());
                std::thread::spawn(move || http(&addr, "POST", "/v2/models/m/infer", &[], small.as_bytes()))
            })
            .collect();
        for a in answers {
            let (status, headers, body) = a.join().unwrap();
            assert!(status == 200 || status == 503, "{status}");
            if status == 503 {
                busy = Some((
                    header(&headers, "retry-after").map(str::to_string),
                    String::from_utf8_lossy(&body).into_owned(),
                ));
            }
        }
    }
    assert_eq!(heavy.join().unwrap(), 200);
    let (retry, body) = busy.expect("a 503 while the queue was full");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(body.contains("the queue is full"), "{body}");
}

#[test]
fn sigterm_finishes_the_requests_in_flight_then_stops() {
    let (mut server, big) = busy_server(&[], 30_000);
    let addr = server.addr.clone();
    let heavy = std::thread::spawn(move || http(&addr, "POST", "/v2/models/m/infer", &[], big.as_bytes()));
    // the request is in flight once its log line is not yet there but its bytes are sent
    std::thread::sleep(Duration::from_millis(150));
    let killed = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let (status, _, body) = heavy.join().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let rows = by_name(&serde_json::from_slice(&body).unwrap())["predicted"].len();
    assert_eq!(rows, 30_000);
    let start = Instant::now();
    let code = loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            break code;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(code.success(), "exit {code:?}");
    assert!(TcpStream::connect(&server.addr).is_err(), "still listening");
}

/// Whether the browser test can run: node, Debian's chromium and playwright-core
/// (`npm ci --prefix tests/web`); CI installs them and sets GMU_REQUIRE_BROWSER=1.
fn browser_present() -> bool {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let missing = [
        (!node).then_some("node"),
        (!Path::new(&chromium).exists()).then_some("chromium (apt-get install chromium)"),
        (!web.join("node_modules/playwright-core").exists()).then_some("playwright-core (npm ci --prefix tests/web)"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("GMU_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("GMU_REQUIRE_BROWSER=1 but {} is missing", missing.join(", "));
    }
    let line = format!("SKIPPED the browser test of gmu serve's page: no {}\n", missing.join(", "));
    eprint!("{line}");
    if let Ok(path) = std::env::var("GMU_SKIPPED")
        && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path)
    {
        let _ = file.write_all(line.as_bytes());
    }
    false
}

#[test]
fn a_plot_and_a_poster_get_gmu_predicts_numbers_over_the_protocol_and_on_the_page() {
    use gmu::encoders::EncoderKind;
    if !common::encoders_present(&[EncoderKind::MiniLm, EncoderKind::EffnetLite0]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mmimdb");
    common::write_raw_archive(&root, 60);
    let out = dir.path().join("run");
    let trained = Command::new(env!("CARGO_BIN_EXE_gmu"))
        .args(["mmimdb", "--archive", root.to_str().unwrap(), "--fusion", "gmu", "--no-single", "--epochs", "8"])
        .args(["--hidden", "32", "--batch-size", "8", "--lr", "0.01", "--seed", "1", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    let model = out.join("gmu");
    let plot = "A haunted house, a ghost and a scream in the night.";
    let poster = root.join("dataset").join("0000100.jpeg");
    let cli = |args: &[&str]| -> Value {
        let o = Command::new(env!("CARGO_BIN_EXE_gmu"))
            .args(["predict", "--model", model.to_str().unwrap(), "--json"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let both = cli(&["--text", plot, "--image", poster.to_str().unwrap()]);
    let text_only = cli(&["--text", plot]);
    let server = Server::start(&["--model", model.to_str().unwrap(), "--name", "genres", "--max-text-bytes", "200"]);
    let (_, _, meta) = server.get("/v2/models/genres");
    let meta: Value = serde_json::from_slice(&meta).unwrap();
    assert_eq!(meta["inputs"][0]["datatype"], "BYTES");
    assert_eq!(meta["inputs"][1]["parameters"]["content"], "image (JPEG or PNG bytes)");
    let labels: Vec<String> =
        meta["parameters"]["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    let check = |response: &Value, want: &Value, what: &str| {
        let out = by_name(response);
        for (c, l) in labels.iter().enumerate() {
            let got = f(&out["probabilities"][c]);
            assert!(same(got, f(&want[format!("p_{l}")])), "{what}: p_{l} {got} vs {}", want[format!("p_{l}")]);
        }
        for key in [
            "gate_text",
            "share_text",
            "suspect_text",
            "importance_text",
            "conflict_text",
            "gate_visual",
            "share_visual",
            "suspect_visual",
            "importance_visual",
            "conflict_visual",
        ] {
            assert!(same(f(&out[key][0]), f(&want[key])), "{what}: {key} {} vs {}", out[key][0], want[key]);
        }
        let predicted: Vec<&str> = want["predicted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(out["predicted"][0].as_str().unwrap(), predicted.join("|"), "{what}");
    };
    // binary: the plot's text and the poster's bytes after the JSON
    let image = std::fs::read(&poster).unwrap();
    let head = json!({"inputs": [
        {"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 4 + plot.len()}},
        {"name": "visual", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 4 + image.len()}},
    ]})
    .to_string();
    let mut body = head.clone().into_bytes();
    body.extend((plot.len() as u32).to_le_bytes());
    body.extend(plot.as_bytes());
    body.extend((image.len() as u32).to_le_bytes());
    body.extend(&image);
    let (status, _, answer) = http(
        &server.addr,
        "POST",
        "/v2/models/genres/infer",
        &[("Inference-Header-Content-Length", head.len().to_string())],
        &body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    check(&serde_json::from_slice(&answer).unwrap(), &both, "binary plot and poster");
    // JSON: the poster as base64; a plot alone (the poster a missing view)
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&image);
    let request = json!({"inputs": [
        {"name": "text", "shape": [1], "datatype": "BYTES", "data": [plot]},
        {"name": "visual", "shape": [1], "datatype": "BYTES", "data": [b64]},
    ]});
    let (status, answer) = server.post_json("/v2/models/genres/infer", &request);
    assert_eq!(status, 200, "{answer}");
    check(&answer, &both, "JSON plot and base64 poster");
    let (status, answer) = server.post_json(
        "/v2/models/genres/infer",
        &json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [plot]}]}),
    );
    assert_eq!(status, 200, "{answer}");
    check(&answer, &text_only, "plot alone");
    // concurrent requests' plots and posters go through the encoders together
    // (a long batching delay makes sure they meet) and get the numbers each gets alone
    let pairs: Vec<(String, std::path::PathBuf)> = (0..3)
        .map(|i| {
            (
                format!("{plot} Part {i}: a robot on a planet."),
                root.join("dataset").join(format!("{:07}.jpeg", 100 + i)),
            )
        })
        .collect();
    let alone: Vec<Value> = pairs.iter().map(|(t, p)| cli(&["--text", t, "--image", p.to_str().unwrap()])).collect();
    let batching = Server::start(&["--model", model.to_str().unwrap(), "--name", "genres", "--max-delay-ms", "300"]);
    let answers: Vec<(usize, Value)> = std::thread::scope(|s| {
        let sent: Vec<_> = (0..6)
            .map(|i| {
                let (text, poster) = &pairs[i % 3];
                let image = base64::engine::general_purpose::STANDARD.encode(std::fs::read(poster).unwrap());
                let request = json!({"inputs": [
                    {"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]},
                    {"name": "visual", "shape": [1], "datatype": "BYTES", "data": [image]},
                ]});
                let batching = &batching;
                s.spawn(move || (i, batching.post_json("/v2/models/genres/infer", &request)))
            })
            .collect();
        sent.into_iter()
            .map(|h| {
                let (i, (status, answer)) = h.join().unwrap();
                assert_eq!(status, 200, "{answer}");
                (i, answer)
            })
            .collect()
    });
    for (i, answer) in &answers {
        check(answer, &alone[i % 3], &format!("concurrent request {i}"));
    }
    let (_, _, metrics) = batching.get("/metrics");
    let metrics = String::from_utf8(metrics).unwrap();
    let count = |line: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .unwrap_or_else(|| panic!("{line} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    // two views, six rows each: fewer passes than rows, so some pass took several requests
    assert_eq!(count("gmu_encoder_batch_rows_sum "), 12, "{metrics}");
    assert!(count("gmu_encoder_batch_rows_count ") < 12, "{metrics}");
    drop(batching);
    // the raw inputs' limits
    let long = "word ".repeat(50);
    let (status, answer) = server.post_json(
        "/v2/models/genres/infer",
        &json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [long]}]}),
    );
    assert_eq!(status, 413);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("input 'text', element 0: a text of 250 bytes; the limit is 200 (--max-text-bytes)")
    );
    let (status, answer) = server.post_json(
        "/v2/models/genres/infer",
        &json!({"inputs": [{"name": "visual", "shape": [1], "datatype": "BYTES", "data": ["bm90IGFuIGltYWdl"]}]}),
    );
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("input 'visual', element 0: not a JPEG or PNG image"),
        "{answer}"
    );
    let (status, answer) = server.post_json(
        "/v2/models/genres/infer",
        &json!({"inputs": [{"name": "visual", "shape": [1], "datatype": "BYTES", "data": ["***"]}]}),
    );
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("must be base64"), "{answer}");

    // the page, in a real browser: type the plot, drop the poster, read the bars
    if !browser_present() {
        return;
    }
    let shot = std::env::var("GMU_PAGE_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("page.png"));
    let page = Command::new("node")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web"))
        .args(["page.mjs", &format!("http://{}/", server.addr), plot, poster.to_str().unwrap(), shot.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(page.status.success(), "{}", String::from_utf8_lossy(&page.stderr));
    let shown: Value = serde_json::from_slice(&page.stdout).unwrap();
    assert_eq!(shown["page_errors"], json!([]), "{shown}");
    assert_eq!(shown["error"], "", "{shown}");
    let predicted: Vec<&str> = both["predicted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(shown["predicted"], predicted.join(", "), "{shown}");
    for l in &labels {
        assert!(
            same(f(&shown["probs"][l]), f(&both[format!("p_{l}")])),
            "page: p_{l} {} vs {}",
            shown["probs"][l],
            both[format!("p_{l}")]
        );
    }
    for view in ["text", "visual"] {
        assert_eq!(shown["views"][view]["present"], true);
        for what in ["gate", "share", "suspect", "importance", "conflict"] {
            let want = f(&both[format!("{what}_{view}")]);
            assert!(
                same(f(&shown["views"][view][what]), want),
                "page: {what}_{view} {} vs {want}",
                shown["views"][view][what]
            );
            let width = format!("{}%", f64::from(want.clamp(0.0, 1.0)) * 100.0);
            assert!(
                shown["views"][view][format!("{what}_width")]
                    .as_str()
                    .unwrap()
                    .starts_with(&width[..4.min(width.len())]),
                "{shown}"
            );
        }
    }
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "the screenshot {}", shot.display());
}
