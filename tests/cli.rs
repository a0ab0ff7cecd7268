//! End-to-end runs of the real `gmu` binary on small files.

mod common;

use common::{encoders_present, write_raw_archive};

use std::path::Path;
use std::process::{Command, Output};

fn gmu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gmu")).args(args).env("RUST_BACKTRACE", "1").output().expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(buf.iter().any(|&b| b != 255), "{} is blank", path.display());
    (info.width, info.height)
}

/// Asserts a clean refusal: non-zero exit, one `error:` line naming `needle`, no panic.
fn assert_refused(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected a failure for {needle:?}");
    // Issue 25, item 8: a refusal exits with 1 (clap's own usage errors with 2), not 101 (a panic) or a signal.
    let code = out.status.code();
    let usage = code == Some(2) && err.contains("--help");
    assert!(code == Some(1) || usage, "exit status {code:?} for {needle:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err}");
    assert!(names_its_subject(lines[0]), "a bare message (it names no file, flag, row, view or field): {}", lines[0]);
}

/// Issue 20, item 22: every refusal a test triggers names what it is about:
/// a file (a path), a flag or parameter (`invalid …`, `--…`), a row, line,
/// column, view, field, tensor, dataset or member, or a quoted value.
fn names_its_subject(line: &str) -> bool {
    let markers = [
        "/", "--", "'", "\"", "invalid ", "row ", "line ", "column", "view", "field", "tensor", "dataset", "member",
        "label",
    ];
    markers.iter().any(|m| line.contains(m))
}

#[test]
fn demo_writes_figures_metrics_and_models() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let run =
        gmu(&["demo", "--out", out.to_str().unwrap(), "--resolution", "60", "--test-size", "3000", "--seed", "3"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("GMU") && stdout.contains("FF"), "{stdout}");
    assert_eq!(png_size(&out.join("gate_map.png")), (900, 760));
    assert_eq!(png_size(&out.join("prediction_map.png")), (900, 760));
    assert_eq!(png_size(&out.join("loss.png")), (900, 560));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["seed"], 3);
    assert_eq!(metrics["preset"], "default");
    let gmu_acc = metrics["gmu"]["accuracy"].as_f64().unwrap();
    let corr = metrics["gmu"]["corr_m_z"].as_f64().unwrap();
    assert!(gmu_acc >= 0.99, "GMU accuracy {gmu_acc}");
    assert!(corr >= 0.95, "corr(M, z) {corr}");
    assert!(metrics["ff"]["accuracy"].as_f64().unwrap() > 0.9);
    // Issue 25: the other figures by value (were: "a number"): both nets fit their
    // 400 training samples, end with a small cross-entropy, and the printed table
    // says what metrics.json holds.
    for model in ["gmu", "ff"] {
        let m = &metrics[model];
        let (train, loss) = (m["train_accuracy"].as_f64().unwrap(), m["final_loss"].as_f64().unwrap());
        assert!((0.98..=1.0).contains(&train), "{model} train accuracy {train}");
        assert!(loss > 0.0 && loss < 0.1, "{model} final loss {loss}");
        assert!(m["train_ms"].as_f64().unwrap() > 0.0);
        let label = if model == "gmu" { "GMU" } else { "FF" };
        let row = stdout.lines().find(|l| l.starts_with(label)).unwrap();
        let printed: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(printed[1], format!("{:.4}", m["accuracy"].as_f64().unwrap()), "{row}");
        assert_eq!(printed[2], format!("{train:.4}"), "{row}");
        assert_eq!(printed[4], format!("{loss:.4}"), "{row}");
    }
    assert!(metrics["mesh_ms"].as_f64().unwrap() > 0.0);
    for model in ["gmu", "ff"] {
        assert!(out.join(model).join("config.json").exists());
        assert!(out.join(model).join("model-0.safetensors").exists());
    }
    // Same seed, same numbers.
    let again = dir.path().join("again");
    assert!(
        gmu(&["demo", "--out", again.to_str().unwrap(), "--resolution", "60", "--test-size", "3000", "--seed", "3"])
            .status
            .success()
    );
    let second: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["gmu"]["accuracy"], second["gmu"]["accuracy"]);
    assert_eq!(metrics["gmu"]["final_loss"], second["gmu"]["final_loss"]);
}

#[test]
fn synth_train_eval_plot_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    assert!(gmu(&["synth", "--out", &p("train.csv"), "--seed", "1"]).status.success());
    assert!(gmu(&["synth", "--out", &p("test.csv"), "--seed", "2", "--n", "2000"]).status.success());
    let train = gmu(&["train", "--data", &p("train.csv"), "--model", "gmu", "--out", &p("model"), "--seed", "4"]);
    assert!(train.status.success(), "{}", stderr(&train));
    let eval =
        gmu(&["eval", "--model", &p("model"), "--data", &p("test.csv"), "--json", "--predictions", &p("pred.csv")]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let scores: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert!(scores["accuracy"].as_f64().unwrap() >= 0.99, "{scores}");
    assert!(scores["corr_m_z"].as_f64().unwrap() >= 0.95, "{scores}");
    let predictions = std::fs::read_to_string(p("pred.csv")).unwrap();
    assert_eq!(predictions.lines().count(), 2001);
    assert!(predictions.starts_with("p_c1,z,predicted,c\n"));
    let plot =
        gmu(&["plot", "--model", &p("model"), "--data", &p("train.csv"), "--out", &p("maps"), "--resolution", "40"]);
    assert!(plot.status.success(), "{}", stderr(&plot));
    assert_eq!(png_size(&dir.path().join("maps/gate_map.png")), (900, 760));
    // The saved config is the one trained with.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("model/config.json")).unwrap()).unwrap();
    assert_eq!(config["training"]["seed"], 4);
    assert_eq!(config["training"]["model"]["fusion"], "gmu");
    assert_eq!(config["training"]["model"]["head"], "linear");
    assert_eq!(config["training"]["schedule"]["kind"], "steps");
    assert_eq!(config["members"][0]["engine"], "native");
    // Logistic regression cannot solve the task: the comparison is real.
    assert!(gmu(&["train", "--data", &p("train.csv"), "--model", "logreg", "--out", &p("lr")]).status.success());
    let lr = gmu(&["eval", "--model", &p("lr"), "--data", &p("test.csv"), "--json"]);
    let lr: serde_json::Value = serde_json::from_slice(&lr.stdout).unwrap();
    assert!(lr["accuracy"].as_f64().unwrap() < 0.85, "{lr}");
}

#[test]
fn protocol_tallies_gmu_against_logistic_regression() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("protocol.json");
    let run = gmu(&["protocol", "--seeds", "6", "--test-size", "2000", "--out", json.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let t = &report["gmu_vs_logreg"];
    let total = t["wins"].as_u64().unwrap() + t["ties"].as_u64().unwrap() + t["losses"].as_u64().unwrap();
    assert_eq!(total, 6);
    // 6 of 6 here; one seed may land on the other side of a tie on a CPU whose float sums
    // round otherwise (AVX-512 against AVX2 kernels), so one is allowed (issue 25).
    assert!(t["wins"].as_u64().unwrap() >= 5, "{report}");
    assert_eq!(report["outcomes"].as_array().unwrap().len(), 6);
    assert_eq!(report["setting"], "paper");
}

/// The default recipe's robustness on the post's data, on a small scale: every
/// seed reaches accuracy ≥ 0.99 with a gate that follows M (README: 100 of 100).
#[test]
fn default_recipe_is_robust_on_the_posts_data() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("robust.json");
    let run = gmu(&[
        "protocol",
        "--setting",
        "seed",
        "--seeds",
        "12",
        "--test-size",
        "2000",
        "--out",
        json.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // 12 of 12 here (README: 100 of 100); a seed near a criterion's edge may flip with another
    // CPU's float rounding (AVX-512 against AVX2 kernels), so one is allowed (issue 25).
    assert!(report["robust_seeds"].as_u64().unwrap() >= 11, "{report}");
    // The post's recipe is not: most of the same seeds fail one criterion or the other.
    let seed = dir.path().join("seed.json");
    assert!(
        gmu(&[
            "protocol",
            "--setting",
            "seed",
            "--preset",
            "seed",
            "--seeds",
            "12",
            "--test-size",
            "2000",
            "--out",
            seed.to_str().unwrap()
        ])
        .status
        .success()
    );
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&seed).unwrap()).unwrap();
    assert!(report["robust_seeds"].as_u64().unwrap() <= 6, "{report}");
}

#[test]
fn bad_csv_files_get_one_clear_error_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("missing.csv", "v0,c\n1,0\n", "missing column `t0`"),
        ("word.csv", "v0,t0,c\n1,2,0\n1,x,1\n", "line 3, column `t0`: `x` is not a number"),
        ("nan.csv", "v0,t0,c\n1,NaN,0\n", "NaN is not finite"),
        ("empty.csv", "", "empty"),
    ];
    for (name, text, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out_dir = dir.path().join(format!("model-{name}"));
        let run = gmu(&["train", "--data", path.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
        assert_refused(&run, needle);
        assert!(stderr(&run).contains(name), "the file is named");
        assert!(!out_dir.exists(), "nothing written for {name}");
    }
    let missing = gmu(&["train", "--data", "/nonexistent/data.csv", "--out", dir.path().join("m").to_str().unwrap()]);
    assert_refused(&missing, "/nonexistent/data.csv");
}

#[test]
fn out_of_range_flags_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("d.csv");
    assert!(gmu(&["synth", "--out", csv.to_str().unwrap()]).status.success());
    let csv = csv.to_str().unwrap();
    let out = dir.path().join("model");
    let o = out.to_str().unwrap();
    assert_refused(&gmu(&["train", "--data", csv, "--out", o, "--hidden", "0"]), "--hidden");
    assert_refused(
        &gmu(&["train", "--data", csv, "--out", o, "--modalities", "v"]),
        "the synthetic CSV has the views v and t, got \"v\"",
    );
    assert_refused(&gmu(&["train", "--data", csv, "--out", o, "--lr=-1"]), "--lr");
    assert_refused(&gmu(&["train", "--data", csv, "--out", o, "--steps", "0"]), "--steps");
    // A test share of 0 is a library choice (gmu.fit from Python), not a comparison's.
    assert_refused(&gmu(&["multiview", "--test", "0", "--out", o]), "--test");
    assert!(!out.exists());
    let demo = dir.path().join("demo");
    assert_refused(&gmu(&["demo", "--out", demo.to_str().unwrap(), "--resolution", "1"]), "--resolution");
    assert!(!demo.exists());
    assert_refused(&gmu(&["synth", "--out", dir.path().join("s.csv").to_str().unwrap(), "--p-m", "2"]), "--p-m");
    assert!(!dir.path().join("s.csv").exists());
    assert_refused(&gmu(&["protocol", "--seeds", "0"]), "--seeds");
    // clap's own refusals are one error line too.
    assert_refused(&gmu(&["demo", "--resolution", "many"]), "--resolution");
}

/// `GMU_CPU` picks a lower kernel level (avx2, scalar); anything else is refused before any work,
/// and every level gives the demo's numbers within the conformance tolerance.
#[test]
fn gmu_cpu_forces_a_kernel_level_or_is_refused() {
    let run = |level: &str, out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_gmu"))
            .args(["demo", "--out", out.to_str().unwrap(), "--resolution", "50"])
            .env("GMU_CPU", level)
            .output()
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    assert_refused(&run("avx3", &dir.path().join("bad")), "GMU_CPU=avx3: expected avx512, avx2 or scalar");
    assert!(!dir.path().join("bad").exists());
    let precision = Command::new(env!("CARGO_BIN_EXE_gmu"))
        .args(["demo", "--out", dir.path().join("bad").to_str().unwrap()])
        .env("GMU_ENCODER_PRECISION", "fp8")
        .output()
        .unwrap();
    assert_refused(&precision, "GMU_ENCODER_PRECISION='fp8': expected f32 or bf16");
    assert!(!dir.path().join("bad").exists());
    let accuracy = |level: &str| {
        let out = dir.path().join(level);
        let r = run(level, &out);
        assert!(r.status.success(), "{level}: {}", stderr(&r));
        read_json(&out.join("metrics.json"))["gmu"]["accuracy"].as_f64().unwrap()
    };
    let (scalar, avx2, best) = (accuracy("scalar"), accuracy("avx2"), accuracy("avx512"));
    assert!((scalar - best).abs() < 2e-3 && (avx2 - best).abs() < 2e-3, "{scalar} {avx2} {best}");
}

#[test]
fn eval_refuses_a_model_directory_without_weights() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{\"not\": \"a config\"}").unwrap();
    let csv = dir.path().join("d.csv");
    assert!(gmu(&["synth", "--out", csv.to_str().unwrap()]).status.success());
    let run = gmu(&["eval", "--model", dir.path().to_str().unwrap(), "--data", csv.to_str().unwrap()]);
    assert_refused(&run, "config.json: written by gmu 0.1 (no format_version)");
    std::fs::write(dir.path().join("config.json"), "{\"format_version\": 1, \"views\": 3}").unwrap();
    let run = gmu(&["eval", "--model", dir.path().to_str().unwrap(), "--data", csv.to_str().unwrap()]);
    assert_refused(&run, "config.json: not a gmu model config");
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name).to_str().unwrap().to_string()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Two CSV views and a label file; the class is planted in view `a` for even
/// rows and in view `b` for odd rows.
fn write_views(dir: &Path) -> (String, String, String) {
    let (mut a, mut b, mut y) = ("a0,a1,a2\n".to_string(), "b0,b1,b2\n".to_string(), "label\n".to_string());
    for i in 0..240usize {
        let class = i % 3;
        let noise = |k: usize| (((i * 7919 + k * 104_729) % 1000) as f64 / 1000.0) - 0.5;
        let row = |informative: bool, k0: usize| {
            (0..3)
                .map(|j| format!("{:.4}", noise(k0 + j) + if informative && j == class { 3.0 } else { 0.0 }))
                .collect::<Vec<_>>()
                .join(",")
        };
        a.push_str(&(row(i % 2 == 0, 0) + "\n"));
        b.push_str(&(row(i % 2 == 1, 3) + "\n"));
        y.push_str(&format!("{}\n", ["cat", "dog", "eel"][class]));
    }
    let paths: Vec<String> = [("a.csv", a), ("b.csv", b), ("y.csv", y)]
        .into_iter()
        .map(|(name, text)| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.to_str().unwrap().to_string()
        })
        .collect();
    (paths[0].clone(), paths[1].clone(), paths[2].clone())
}

#[test]
fn multiview_on_files_compares_methods_and_saves_models_and_gates() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let out = dir.path().join("run");
    let files = format!("{a},{b}");
    let args = [
        "multiview",
        "--data",
        "files",
        "--files",
        &files,
        "--labels",
        &y,
        "--fusion",
        "gmu",
        "--fusion",
        "concat",
        "--epochs",
        "8",
        "--hidden",
        "16",
        "--dropout",
        "0.1",
        "--lr",
        "0.01",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = gmu(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    for row in ["| single:a | a |", "| single:b | b |", "| gmu | a+b |", "| concat | a+b |"] {
        assert!(stdout.contains(row), "{row} missing from {stdout}");
    }
    let set = out.join("a+b");
    let results = read_json(&set.join("results.json"));
    let gmu_row = results.as_array().unwrap().iter().find(|r| r["method"] == "gmu").unwrap();
    assert!(gmu_row["test"]["accuracy"].as_f64().unwrap() > 0.9, "{gmu_row}");
    // Each single view can read the class for half the rows only.
    let single = results.as_array().unwrap().iter().find(|r| r["method"] == "single:a").unwrap();
    assert!(single["test"]["accuracy"].as_f64().unwrap() < 0.85, "{single}");
    assert!(gmu_row["gates"]["favoured"].is_array());
    png_size(&set.join("gates-gmu.png"));
    for method in ["gmu", "concat", "single-a"] {
        let config = read_json(&set.join(method).join("config.json"));
        assert_eq!(config["training"]["seed"], 5, "{method}");
        assert_eq!(config["training"]["schedule"]["kind"], "epochs", "{method}");
        assert_eq!(config["format_version"], 2, "{method}");
        assert!(set.join(method).join("model-0.safetensors").exists(), "{method}");
    }
    // Issue 20, item 27: printed paths are where the files are once the run is complete.
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains(&format!("gate chart: {}", set.join("gates-gmu.png").display())), "{stdout}");
    assert!(!stdout.contains(".partial"), "{stdout}");
    // A second run over a finished one is refused (issue 20, item 30); with
    // --force it replaces the folder whole. Same seed, same numbers.
    let refused = gmu(&args);
    assert_refused(&refused, "holds a finished `gmu multiview` run");
    let mut forced = args.to_vec();
    forced.push("--force");
    let again = gmu(&forced);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(read_json(&set.join("results.json"))[2]["test"], gmu_row["test"]);
}

#[test]
fn multiview_mfeat_pair_runs_from_the_embedded_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mv");
    let run = gmu(&[
        "multiview",
        "--modalities",
        "pix,mor",
        "--fusion",
        "gmu",
        "--no-single",
        "--epochs",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("mfeat: 2000 samples, 10 classes"), "{stdout}");
    assert!(stdout.contains("rotation-sensitive"), "{stdout}");
    let results = read_json(&out.join("pix+mor/results.json"));
    assert!(results[0]["test"]["accuracy"].as_f64().unwrap() > 0.8, "{results}");
}

#[test]
fn mmimdb_prints_the_paper_tables_from_an_h5py_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mm");
    let data = fixture("mmimdb_contiguous.h5");
    let run = gmu(&[
        "mmimdb",
        "--data",
        &data,
        "--fusion",
        "gmu",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("40 movies, 23 genres; text 300 + visual 64 features; train 24 / dev 6 / test 10"),
        "{stdout}"
    );
    assert!(stdout.contains("features: 2 rows are NaN"), "{stdout}");
    assert!(stdout.contains("0.617 / 0.630 / 0.630 / 0.541"), "paper's GMU row: {stdout}");
    assert!(stdout.contains("0.588 / 0.592 / 0.595 / 0.488"), "paper's text row: {stdout}");
    assert!(stdout.contains("| Film-Noir |"), "Table 3: {stdout}");
    assert_eq!(png_size(&out.join("gates-per-genre.png")).0, 1100);
    png_size(&out.join("importance-per-genre.png"));
    let results = read_json(&out.join("results.json"));
    assert_eq!(results.as_array().unwrap().len(), 3);
    // Issue 25: the stored F1s by value, recomputed by hand from `predict`'s
    // decisions on the test movies and the file's genres.
    let gmu_row = results.as_array().unwrap().iter().find(|r| r["method"] == "gmu").unwrap();
    let p = gmu(&["predict", "--model", out.join("gmu").to_str().unwrap(), "--data", &data, "--split", "test"]);
    assert!(p.status.success(), "{}", stderr(&p));
    let (micro, samples) = f1_from_predictions(&String::from_utf8_lossy(&p.stdout), &data);
    let stored = &gmu_row["test"]["f1"];
    assert!((stored["micro"].as_f64().unwrap() - micro).abs() < 1e-12, "micro: {stored} vs {micro}");
    assert!((stored["samples"].as_f64().unwrap() - samples).abs() < 1e-12, "samples: {stored} vs {samples}");
}

/// Micro and samples F1 recomputed by hand from `gmu predict`'s decisions on
/// an MM-IMDb file's test movies (`predicted`, the CSV it prints) and the
/// file's own genres.
fn f1_from_predictions(predicted: &str, data: &str) -> (f64, f64) {
    let file = gmu::data::mmimdb::read_hdf5(Path::new(data)).unwrap();
    let names = file.data.targets.names().to_vec();
    let (mut tp, mut fp, mut fn_, mut samples) = (0usize, 0usize, 0usize, 0.0f64);
    let rows: Vec<&str> = predicted.lines().skip(1).collect();
    assert_eq!(rows.len(), file.split.test.len());
    for (line, &r) in rows.iter().zip(&file.split.test) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0].parse::<usize>().unwrap(), r);
        let predicted: Vec<&str> = cells[1].split('|').filter(|s| !s.is_empty()).collect();
        let truth = file.data.targets.indicator_row(r);
        let (mut t, mut f, mut n) = (0usize, 0usize, 0usize);
        for (j, name) in names.iter().enumerate() {
            match (predicted.contains(&name.as_str()), truth[j] == 1) {
                (true, true) => t += 1,
                (true, false) => f += 1,
                (false, true) => n += 1,
                _ => {}
            }
        }
        (tp, fp, fn_) = (tp + t, fp + f, fn_ + n);
        // scikit-learn's samples F1: a row with nothing predicted and nothing true scores 0.
        samples += if t + f + n == 0 { 0.0 } else { 2.0 * t as f64 / (2 * t + f + n) as f64 };
    }
    (2.0 * tp as f64 / (2 * tp + fp + fn_).max(1) as f64, samples / rows.len() as f64)
}

/// The file's `sequences` through the trainable LSTM: trained with the
/// fusion, recorded in the model directory, and read again by `predict`.
#[test]
fn mmimdb_trains_an_lstm_on_the_files_word_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mm");
    let data = fixture("mmimdb_contiguous.h5");
    let run = gmu(&[
        "mmimdb",
        "--data",
        &data,
        "--text-view",
        "sequences",
        "--max-tokens",
        "4",
        "--fusion",
        "gmu",
        "--no-single",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("text 4 tokens of a 101-token vocabulary (read by an LSTM) + visual 64 features"),
        "{stdout}"
    );
    let results = read_json(&out.join("results.json"));
    let config = std::fs::read_to_string(out.join("gmu/config.json")).unwrap();
    assert!(config.contains("\"text\": \"sequences\"") && config.contains("\"tokens\": 101"), "{config}");
    // `file:sequences` names the view; the length comes from the model
    let sequences = format!("{data}:sequences");
    let predicted = gmu(&[
        "predict",
        "--model",
        out.join("gmu").to_str().unwrap(),
        "--data",
        &sequences,
        "--split",
        "test",
        "--out",
        dir.path().join("p.csv").to_str().unwrap(),
    ]);
    assert!(predicted.status.success(), "{}", stderr(&predicted));
    let csv = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11, "a header and the 10 test movies: {csv}");
    // Issue 25: the stored test F1s by value (were: "a number"), from predict's decisions.
    let (micro, samples) = f1_from_predictions(&csv, &data);
    let stored = &results[0]["test"]["f1"];
    assert!((stored["micro"].as_f64().unwrap() - micro).abs() < 1e-12, "micro: {stored} vs {micro}");
    assert!((stored["samples"].as_f64().unwrap() - samples).abs() < 1e-12, "samples: {stored} vs {samples}");
    // Issue 20, item 10: word indices past the model's vocabulary (101) are
    // refused by row and column, not looked up past the embedding (a panic).
    let far = format!("{}:sequences", fixture("mmimdb_far_words.h5"));
    assert_refused(
        &gmu(&["predict", "--model", out.join("gmu").to_str().unwrap(), "--data", &far]),
        "(expected a whole number in 0..101, the vocabulary)",
    );
    // the word2vec view is not what the model read
    assert_refused(
        &gmu(&["predict", "--model", out.join("gmu").to_str().unwrap(), "--data", &data]),
        "view 'text' has 300 columns; the model was trained on 4",
    );
    // a text view the file does not have, and a bad view name
    let bad = fixture("mmimdb_bad_shape.h5");
    assert_refused(
        &gmu(&["mmimdb", "--data", &bad, "--text-view", "sequences", "--out", dir.path().join("x").to_str().unwrap()]),
        "missing dataset 'sequences'",
    );
    assert_refused(
        &gmu(&["train", "--data", &format!("{data}:words"), "--out", dir.path().join("y").to_str().unwrap()]),
        "features, word-grams, three-grams or sequences",
    );
}

#[test]
fn mmimdb_and_multiview_refuse_bad_input_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let o = out.to_str().unwrap();
    let bad_split = fixture("mmimdb_bad_split.h5");
    assert_refused(
        &gmu(&["mmimdb", "--data", &bad_split, "--out", o]),
        "mmimdb_bad_split.h5: attribute 'split' does not add up",
    );
    let names = fixture("mmimdb_bad_names.h5");
    assert_refused(&gmu(&["mmimdb", "--data", &names, "--out", o]), "'target_names' lists 22 names");
    assert_refused(&gmu(&["mmimdb", "--data", "/no/such/file.h5", "--out", o]), "/no/such/file.h5");
    let (a, _, _) = write_views(dir.path());
    assert_refused(&gmu(&["multiview", "--data", "files", "--files", &a, "--out", o]), "--labels");
    assert_refused(&gmu(&["multiview", "--modalities", "pix,nope", "--out", o]), "no view 'nope'");
    assert_refused(
        &gmu(&["multiview", "--modalities", "pix", "--fusion", "gmu", "--no-single", "--out", o]),
        "at least 2",
    );
    assert_refused(&gmu(&["multiview", "--lr=-1", "--out", o]), "--lr");
    assert!(!out.exists(), "nothing may be written on a refused run");
}

#[test]
fn predict_runs_trained_models_on_new_rows_with_missing_views() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let out = dir.path().join("run");
    let files = format!("{a},{b}");
    let train = [
        "multiview",
        "--files",
        &files,
        "--labels",
        &y,
        "--fusion",
        "gmu",
        "--fusion",
        "avg-probs",
        "--epochs",
        "8",
        "--hidden",
        "16",
        "--dropout",
        "0.1",
        "--lr",
        "0.01",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
    ];
    assert!(gmu(&train).status.success());
    let results = read_json(&out.join("a+b/results.json"));
    let model = out.join("a+b/gmu");
    let m = model.to_str().unwrap();
    // The test split again, from the split recorded in the model: the same scores as training printed.
    let pred = dir.path().join("pred.csv");
    let run = gmu(&[
        "predict",
        "--model",
        m,
        "--files",
        &files,
        "--labels",
        &y,
        "--split",
        "test",
        "--out",
        pred.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let gmu_row = results.as_array().unwrap().iter().find(|r| r["method"] == "gmu").unwrap();
    let acc = gmu_row["test"]["accuracy"].as_f64().unwrap();
    assert!(
        String::from_utf8_lossy(&run.stdout).contains(&format!("accuracy {acc:.4}")),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let text = std::fs::read_to_string(&pred).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "row,predicted,p_cat,p_dog,p_eel,gate_a,share_a,suspect_a,importance_a,conflict_a,gate_b,share_b,suspect_b,importance_b,conflict_b"
    );
    assert_eq!(text.lines().count(), 1 + 48);
    // Unlabelled rows with the text view missing in row 1: JSON lines on stdout.
    let b_text = std::fs::read_to_string(&b).unwrap();
    let mut lines: Vec<String> = b_text.lines().take(4).map(String::from).collect();
    lines[2] = ",,".into();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("b.csv"), lines.join("\n") + "\n").unwrap();
    let a_text: Vec<String> = std::fs::read_to_string(&a).unwrap().lines().take(4).map(String::from).collect();
    std::fs::write(sub.join("a.csv"), a_text.join("\n") + "\n").unwrap();
    let files_sub = format!("{},{}", sub.join("a.csv").display(), sub.join("b.csv").display());
    let run = gmu(&["predict", "--model", m, "--files", &files_sub, "--json"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&run.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["share_a"], 1.0);
    // The missing view has no gate, share, suspicion or importance (null; issue 20, item 26).
    for key in ["gate_b", "share_b", "suspect_b", "importance_b"] {
        assert!(rows[1][key].is_null(), "{key}: {}", rows[1]);
    }
    assert!(rows[1]["importance_a"].is_null(), "the only view present has no occlusion importance");
    let probs: f64 = ["p_cat", "p_dog", "p_eel"].iter().map(|k| rows[0][k].as_f64().unwrap()).sum();
    assert!((probs - 1.0).abs() < 1e-4);
    // avg-probs: the present member alone.
    // Issue 25: by value (was: exit status only). The run's avg-probs averages the
    // selected single-view models; row 1 lacks view b, so its probabilities are
    // single:a's, and row 0's are the mean of both singles'.
    let avg = out.join("a+b/avg-probs");
    let json_rows = |model: &Path, files: &str| -> Vec<[f64; 3]> {
        let run = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", files, "--json"]);
        assert!(run.status.success(), "{}", stderr(&run));
        String::from_utf8_lossy(&run.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                ["p_cat", "p_dog", "p_eel"].map(|k| v[k].as_f64().unwrap())
            })
            .collect()
    };
    let averaged = json_rows(&avg, &files_sub);
    let single_a = json_rows(&out.join("a+b/single-a"), &sub.join("a.csv").display().to_string());
    let single_b = json_rows(&out.join("a+b/single-b"), &b); // the whole file: its row 0 is sub's
    for k in 0..3 {
        assert!((averaged[1][k] - single_a[1][k]).abs() < 1e-6, "{averaged:?} vs {single_a:?}");
        let mean = (single_a[0][k] + single_b[0][k]) / 2.0;
        assert!((averaged[0][k] - mean).abs() < 1e-6, "{averaged:?} vs the mean of {single_a:?} and {single_b:?}");
    }
    // A synthetic model predicts a synthetic CSV.
    let csv = dir.path().join("toy.csv");
    assert!(gmu(&["synth", "--out", csv.to_str().unwrap(), "--n", "50"]).status.success());
    let toy = dir.path().join("toy");
    assert!(
        gmu(&["train", "--data", csv.to_str().unwrap(), "--out", toy.to_str().unwrap(), "--restarts", "2"])
            .status
            .success()
    );
    let run = gmu(&["predict", "--model", toy.to_str().unwrap(), "--data", csv.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout)
            .starts_with("row,predicted,p_0,p_1,gate_v,share_v,suspect_v,importance_v,conflict_v,gate_t,")
    );
    assert!(stderr(&run).contains("gmu on 50 rows: accuracy"), "{}", stderr(&run));
}

#[test]
fn predict_refuses_bad_models_and_views_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let out = dir.path().join("run");
    let files = format!("{a},{b}");
    let train = [
        "multiview",
        "--files",
        &files,
        "--labels",
        &y,
        "--fusion",
        "concat",
        "--no-single",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    assert!(gmu(&train).status.success());
    let model = out.join("a+b/concat");
    let m = model.to_str().unwrap();
    // Views: one missing, an unknown name, a wrong width.
    assert_refused(
        &gmu(&["predict", "--model", m, "--files", &a]),
        "the model reads view 'b' (3 columns); the data have a (3 columns)",
    );
    let other = dir.path().join("c.csv");
    std::fs::copy(&b, &other).unwrap();
    assert_refused(
        &gmu(&["predict", "--model", m, "--files", &format!("{a},{}", other.display())]),
        "the model reads view 'b'",
    );
    let narrow = dir.path().join("narrow");
    std::fs::create_dir(&narrow).unwrap();
    std::fs::write(narrow.join("b.csv"), "b0,b1\n1,2\n").unwrap();
    std::fs::write(narrow.join("a.csv"), "a0,a1,a2\n1,2,3\n").unwrap();
    let nf = format!("{},{}", narrow.join("a.csv").display(), narrow.join("b.csv").display());
    assert_refused(
        &gmu(&["predict", "--model", m, "--files", &nf]),
        "view 'b' has 2 columns; the model was trained on 3",
    );
    // A row that is only partly missing.
    std::fs::write(narrow.join("b.csv"), "b0,b1,b2\n1,,3\n").unwrap();
    assert_refused(&gmu(&["predict", "--model", m, "--files", &nf]), "view 'b', row 0, column 1: a missing cell");
    // The output may not overwrite an input.
    assert_refused(&gmu(&["predict", "--model", m, "--files", &files, "--out", &a]), "is an input of this command");
    assert_eq!(std::fs::read_to_string(&a).unwrap().lines().count(), 241, "the input is untouched");
    // Model directories: missing weights, an old format, a newer one.
    std::fs::rename(model.join("model-0.safetensors"), dir.path().join("w")).unwrap();
    assert_refused(&gmu(&["predict", "--model", m, "--files", &files]), "model-0.safetensors: missing weights file");
    std::fs::rename(dir.path().join("w"), model.join("model-0.safetensors")).unwrap();
    let config = model.join("config.json");
    let mut json = read_json(&config);
    json["format_version"] = 7.into();
    std::fs::write(&config, json.to_string()).unwrap();
    assert_refused(
        &gmu(&["predict", "--model", m, "--files", &files]),
        "model format 7; this gmu 0.1.0 reads format 2",
    );
    json.as_object_mut().unwrap().remove("format_version");
    std::fs::write(&config, json.to_string()).unwrap();
    assert_refused(&gmu(&["predict", "--model", m, "--files", &files]), "written by gmu 0.1 (no format_version)");
    assert_refused(
        &gmu(&["predict", "--model", "/no/such/model", "--files", &files]),
        "/no/such/model: not a model directory",
    );
}

#[test]
fn multiview_scores_methods_with_views_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let out = dir.path().join("run");
    let files = format!("{a},{b}");
    let run = gmu(&[
        "multiview",
        "--files",
        &files,
        "--labels",
        &y,
        "--fusion",
        "gmu",
        "--fusion",
        "avg-probs",
        "--epochs",
        "3",
        "--modality-dropout",
        "0.2",
        "--view-noise",
        "0.3",
        "--noise-kind",
        "swap",
        "--gate-supervision",
        "0.5",
        "--gate-supervision-clean",
        "0.2",
        "--missing-rates",
        "0,0.5,1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("| method | view missing | 0 % | 50 % | 100 % |"), "{stdout}");
    assert!(stdout.contains("| single:a | a | ") && stdout.contains(" – |"), "{stdout}");
    png_size(&out.join("a+b/missing.png"));
    let results = read_json(&out.join("a+b/results.json"));
    let gmu_row = results.as_array().unwrap().iter().find(|r| r["method"] == "gmu").unwrap();
    assert_eq!(gmu_row["missing"].as_array().unwrap().len(), 2);
    assert_eq!(gmu_row["config"]["modality_dropout"], 0.2);
    // Every method, avg-probs' members included, records the same view noise.
    for row in results.as_array().unwrap() {
        assert_eq!(row["config"]["view_noise"]["p"], 0.3, "{}", row["method"]);
        assert_eq!(row["config"]["view_noise"]["kind"], "swap", "{}", row["method"]);
    }
    let saved = read_json(&out.join("a+b/gmu/config.json"));
    assert_eq!(saved["training"]["view_noise"]["sigma"], serde_json::json!([0.5, 4.0]));
    assert_eq!(saved["training"]["view_noise"]["gate_supervision"], 0.5);
    // The clean side of the term (f32 in the file).
    assert!((saved["training"]["view_noise"]["gate_supervision_clean"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert_refused(
        &gmu(&["multiview", "--view-noise", "0.3", "--gate-supervision=-1", "--out", out.to_str().unwrap()]),
        "--gate-supervision",
    );
    assert_refused(
        &gmu(&[
            "multiview",
            "--view-noise",
            "0.3",
            "--gate-supervision",
            "1",
            "--gate-supervision-clean=-1",
            "--out",
            out.to_str().unwrap(),
        ]),
        "--gate-supervision-clean",
    );
    assert_refused(&gmu(&["multiview", "--gate-per-view", "--out", out.to_str().unwrap()]), "--gate-per-view");
    // The maxout engine has no term on the gates: asking for both names the flag.
    let explicit = gmu(&[
        "multiview",
        "--files",
        &files,
        "--labels",
        &y,
        "--fusion",
        "gmu",
        "--engine",
        "maxout",
        "--view-noise",
        "0.3",
        "--gate-supervision",
        "1",
        "--out",
        dir.path().join("refused").to_str().unwrap(),
    ]);
    assert_refused(&explicit, "--engine");
    assert!(stderr(&explicit).contains("--gate-supervision"), "{}", stderr(&explicit));
    assert_refused(
        &gmu(&["multiview", "--view-noise", "0.3", "--noise-sigma", "1", "--out", out.to_str().unwrap()]),
        "--noise-sigma",
    );
    assert_refused(
        &gmu(&["multiview", "--modality-dropout", "1.5", "--out", out.to_str().unwrap()]),
        "--modality-dropout",
    );
}

#[test]
fn robustness_rescores_a_run_with_noise_on_each_view() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let out = dir.path().join("run");
    let files = format!("{a},{b}");
    let train = [
        "multiview",
        "--files",
        &files,
        "--labels",
        &y,
        "--fusion",
        "gmu",
        "--fusion",
        "concat",
        "--epochs",
        "4",
        "--out",
        out.to_str().unwrap(),
    ];
    assert!(gmu(&train).status.success());
    let run = gmu(&["robustness", "--run", out.to_str().unwrap(), "--levels", "0,1,4"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let set = out.join("a+b");
    let report = read_json(&set.join("robustness.json"));
    assert_eq!(report["levels"], serde_json::json!([0.0, 1.0, 4.0]));
    assert_eq!(report["metric"], "macro_f1");
    let gmu_a = report["methods"]["gmu"]["a"].as_array().unwrap();
    assert_eq!(gmu_a.len(), 3);
    // σ = 0 is the clean test score of the run.
    let results = read_json(&set.join("results.json"));
    let clean = results.as_array().unwrap().iter().find(|r| r["method"] == "gmu").unwrap()["test"]["f1"]["macro_"]
        .as_f64()
        .unwrap();
    assert!((gmu_a[0].as_f64().unwrap() - clean).abs() < 1e-9, "{gmu_a:?} vs {clean}");
    assert!(report["gate_share"]["gmu"]["b"].is_array() && report["gate_share"]["concat"].is_null());
    assert!(
        report["methods"]["single:b"]["a"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x == &report["methods"]["single:b"]["a"][0])
    );
    png_size(&set.join("robustness.png"));
    png_size(&set.join("gate_shift.png"));
    assert_eq!(report["kind"], "gaussian");
    // The other kinds write their own files; a share of 0 is the clean score again.
    for kind in ["swap", "zero"] {
        let run = gmu(&["robustness", "--run", out.to_str().unwrap(), "--kind", kind]);
        assert!(run.status.success(), "{}", stderr(&run));
        let report = read_json(&set.join(format!("robustness-{kind}.json")));
        assert_eq!(report["kind"], kind);
        assert_eq!(report["levels"], serde_json::json!([0.0, 0.25, 0.5, 0.75, 1.0]));
        assert!((report["methods"]["gmu"]["a"][0].as_f64().unwrap() - clean).abs() < 1e-9, "{kind}");
        let d = &report["detection_auroc"]["gmu"]["a"];
        assert!(
            ["gate", "share", "importance"].iter().all(|r| d[r].as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)))
        );
        assert!(report["detection_auroc"]["concat"].is_null());
        png_size(&set.join(format!("robustness-{kind}.png")));
    }
    assert_refused(
        &gmu(&["robustness", "--run", out.to_str().unwrap(), "--kind", "zero", "--levels", "0,2"]),
        "[0, 1]",
    );
    assert_refused(&gmu(&["robustness", "--run", dir.path().join("nothing").to_str().unwrap()]), "nothing");
    assert_refused(&gmu(&["robustness", "--run", out.to_str().unwrap(), "--levels", "1,0"]), "increasing");
}

#[test]
fn multilabel_from_multi_hot_or_label_sets_trains_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = write_views(dir.path());
    // Labels: "pet" for classes cat and dog, plus the animal itself.
    let (mut hot, mut sets) = ("cat,dog,eel,pet\n".to_string(), "labels\n".to_string());
    for i in 0..240usize {
        let class = i % 3;
        let row: Vec<u8> = (0..4).map(|j| u8::from(j == class || (j == 3 && class < 2))).collect();
        hot.push_str(&format!("{}\n", row.iter().map(u8::to_string).collect::<Vec<_>>().join(",")));
        let names: Vec<&str> =
            ["cat", "dog", "eel", "pet"].iter().zip(&row).filter(|(_, on)| **on == 1).map(|(n, _)| *n).collect();
        sets.push_str(&format!("{}\n", names.join("|")));
    }
    let (hot_path, sets_path) = (dir.path().join("hot.csv"), dir.path().join("sets.csv"));
    std::fs::write(&hot_path, hot).unwrap();
    std::fs::write(&sets_path, sets).unwrap();
    let files = format!("{a},{b}");
    let mut tests = Vec::new();
    for (labels, name) in [(&hot_path, "hot"), (&sets_path, "sets")] {
        let out = dir.path().join(name);
        let run = gmu(&[
            "multiview",
            "--files",
            &files,
            "--labels",
            labels.to_str().unwrap(),
            "--fusion",
            "gmu",
            "--no-single",
            "--epochs",
            "6",
            "--hidden",
            "16",
            "--lr",
            "0.01",
            "--dropout",
            "0.1",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(stdout.contains("| method | views | weighted F1 | samples F1 | micro F1 | macro F1 |"), "{stdout}");
        assert!(stdout.contains("| pet | "), "per-label table: {stdout}");
        let results = read_json(&out.join("a+b/results.json"));
        assert!(results[0]["test"]["f1"]["samples"].as_f64().unwrap() > 0.8, "{results}");
        tests.push(results[0]["test"].clone());
        // Predict: label sets joined by |.
        let pred = gmu(&[
            "predict",
            "--model",
            out.join("a+b/gmu").to_str().unwrap(),
            "--files",
            &files,
            "--labels",
            labels.to_str().unwrap(),
        ]);
        assert!(pred.status.success(), "{}", stderr(&pred));
        let text = String::from_utf8_lossy(&pred.stdout);
        assert!(text.starts_with("row,predicted,p_cat,p_dog,p_eel,p_pet,gate_a,"), "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("0,cat|pet,"), "{text}");
        assert!(stderr(&pred).contains("F1 weighted"), "{}", stderr(&pred));
    }
    assert_eq!(tests[0], tests[1], "the two label formats are the same targets");
    // A blank label and a bad multi-hot cell are named.
    std::fs::write(dir.path().join("blank.csv"), "y\ncat\n\ndog\n").unwrap();
    let o = dir.path().join("never");
    let blank = gmu(&[
        "multiview",
        "--files",
        &files,
        "--labels",
        dir.path().join("blank.csv").to_str().unwrap(),
        "--out",
        o.to_str().unwrap(),
    ]);
    assert_refused(&blank, "blank.csv: line 3: blank label");
    std::fs::write(dir.path().join("bad.csv"), "x,y\n1,0\n0,2\n").unwrap();
    let bad = gmu(&[
        "multiview",
        "--files",
        &files,
        "--labels",
        dir.path().join("bad.csv").to_str().unwrap(),
        "--out",
        o.to_str().unwrap(),
    ]);
    assert_refused(&bad, "line 3, column 'y': '2' (a multi-hot label file holds 0 or 1)");
    // --files with another data set is refused, not ignored.
    assert_refused(&gmu(&["multiview", "--data", "mfeat", "--files", &files, "--out", o.to_str().unwrap()]), "--files");
}

#[test]
fn impute_mean_fills_partly_missing_rows_in_training_and_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    // Row 5 of view a loses one cell.
    let text = std::fs::read_to_string(&a).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let cells: Vec<&str> = lines[6].split(',').collect();
    lines[6] = format!("{},,{}", cells[0], cells[2]);
    std::fs::write(&a, lines.join("\n") + "\n").unwrap();
    let files = format!("{a},{b}");
    let out = dir.path().join("run");
    let base = [
        "multiview",
        "--files",
        &files,
        "--labels",
        &y,
        "--fusion",
        "gmu",
        "--no-single",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    assert_refused(&gmu(&base), "view 'a', row 5, column 1: NaN");
    let mut with = base.to_vec();
    with.extend(["--impute", "mean"]);
    let run = gmu(&with);
    assert!(run.status.success(), "{}", stderr(&run));
    let config = read_json(&out.join("a+b/gmu/config.json"));
    assert_eq!(config["training"]["impute"], true);
    let means = config["members"][0]["scalers"][0]["impute"].as_array().unwrap();
    assert_eq!(means.len(), 3);
    let model = out.join("a+b/gmu");
    assert_refused(
        &gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &files]),
        "row 5, column 1: a missing cell",
    );
    let run = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &files, "--impute", "mean"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("imputed 1 missing cells"), "{}", stderr(&run));
}

/// Issue 20, item 31: `--impute mean` reaches every split and every command
/// that trains or scores: partly blank cells in rows of the train, dev and
/// test splits, with single-label and multi-hot labels, through `multiview`,
/// `train` and `robustness`; rows with a view left entirely blank stay
/// missing views (and a single-view model that sees none of its view gets
/// the training prior).
#[test]
fn impute_mean_reaches_every_split_and_every_training_command() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let mut lines: Vec<String> = std::fs::read_to_string(&a).unwrap().lines().map(String::from).collect();
    for i in 0..240 {
        let cells: Vec<String> = lines[i + 1].split(',').map(String::from).collect();
        if i % 10 == 3 {
            lines[i + 1] = format!("{},,{}", cells[0], cells[2]); // partly blank: imputed
        } else if i % 10 == 7 {
            lines[i + 1] = ",,".into(); // entirely blank: a missing view
        }
    }
    std::fs::write(&a, lines.join("\n") + "\n").unwrap();
    // The same rows as multi-hot labels: the class and, for every fourth row, "pet".
    let multi = dir.path().join("multi.csv");
    let mut text = "cat,dog,eel,pet\n".to_string();
    for (i, name) in std::fs::read_to_string(&y).unwrap().lines().skip(1).enumerate() {
        let hot = |c: &str| u8::from(name == c);
        text.push_str(&format!("{},{},{},{}\n", hot("cat"), hot("dog"), hot("eel"), u8::from(i % 4 == 0)));
    }
    std::fs::write(&multi, text).unwrap();
    let files = format!("{a},{b}");
    for (tag, labels) in [("single", y.as_str()), ("multi", multi.to_str().unwrap())] {
        let out = dir.path().join(format!("run-{tag}"));
        let run = gmu(&[
            "multiview",
            "--files",
            &files,
            "--labels",
            labels,
            "--fusion",
            "gmu",
            "--fusion",
            "concat",
            "--epochs",
            "3",
            "--hidden",
            "8",
            "--impute",
            "mean",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{tag}: {}", stderr(&run));
        let results = read_json(&out.join("a+b/results.json"));
        assert!(results.as_array().unwrap().len() >= 4, "{tag}: {results}");
        let r = gmu(&["robustness", "--run", out.to_str().unwrap(), "--levels", "0,1"]);
        assert!(r.status.success(), "{tag}: {}", stderr(&r));
        let report = read_json(&out.join("a+b/robustness.json"));
        assert!(report["methods"].as_object().unwrap().len() >= 4, "{tag}: {report}");
    }
    let model = dir.path().join("model");
    train_gmu(&files, &y, &model, &["--impute", "mean"]);
    let p = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &files, "--impute", "mean"]);
    assert!(p.status.success(), "{}", stderr(&p));
    assert!(stderr(&p).contains("imputed 24 missing cells"), "{}", stderr(&p));
}

/// `gmu train --model gmu` on view `files` and `labels` into `out`, with `extra` flags.
fn train_gmu(files: &str, labels: &str, out: &Path, extra: &[&str]) {
    let o = out.to_str().unwrap();
    let run =
        gmu(&[&["train", "--files", files, "--labels", labels, "--model", "gmu", "--out", o][..], extra].concat());
    assert!(run.status.success(), "{}", stderr(&run));
}

/// Two prediction tables written with 6 decimals, equal cell by cell: text
/// cells exactly, numbers within 2e-6 (the last printed digit, once more for
/// the rounding). The fixtures were written on another machine; kernels that
/// sum in another order (AVX-512 against AVX2) may move the sixth decimal, not
/// more (issue 25).
/// Every column of the table `then` (a fixture) holds the same cells in
/// `now`, which may have more columns (later versions add readouts).
fn assert_same_table(now: &str, then: &str, what: &str) {
    let (a, b): (Vec<&str>, Vec<&str>) = (now.lines().collect(), then.lines().collect());
    assert_eq!(a.len(), b.len(), "{what}: {} lines, the fixture has {}", a.len(), b.len());
    let (header_now, header_then): (Vec<&str>, Vec<&str>) = (a[0].split(',').collect(), b[0].split(',').collect());
    let at: Vec<usize> = header_then
        .iter()
        .map(|h| header_now.iter().position(|n| n == h).unwrap_or_else(|| panic!("{what}: column {h} is gone")))
        .collect();
    for (k, (x, y)) in a.iter().zip(&b).enumerate() {
        let (all, ys): (Vec<&str>, Vec<&str>) = (x.split(',').collect(), y.split(',').collect());
        assert_eq!(all.len(), header_now.len(), "{what}, line {k}");
        let xs: Vec<&str> = at.iter().map(|&i| all[i]).collect();
        assert_eq!(xs.len(), ys.len(), "{what}, line {k}");
        for (c, d) in xs.iter().zip(&ys) {
            match (c.parse::<f64>(), d.parse::<f64>()) {
                (Ok(u), Ok(v)) if c.contains('.') => assert!((u - v).abs() <= 2e-6, "{what}, line {k}: {c} vs {d}"),
                _ => assert_eq!(c, d, "{what}, line {k}"),
            }
        }
    }
}

/// Model directories of format 2 written before the crate was layered and its
/// trained-model types became one (see tests/fixtures/model_v2/README.md: a GMU,
/// `avg-probs` with two members, a mixture of experts) predict the same bytes:
/// probabilities, gates, shares and occlusion importance.
#[test]
fn format_2_model_directories_predict_as_they_did() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model_v2");
    let dir = tempfile::tempdir().unwrap();
    for method in ["gmu", "avg-probs", "moe-maxout"] {
        let model = fixtures.join(format!("mfeat-{method}"));
        let out = dir.path().join(format!("{method}.csv"));
        let run = gmu(&[
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--data",
            "mfeat",
            "--split",
            "test",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{method}: {}", stderr(&run));
        let then = std::fs::read_to_string(fixtures.join(format!("mfeat-{method}.predictions.csv"))).unwrap();
        let now: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().take(41).map(String::from).collect();
        assert_eq!(now.len(), 41, "{method}: 400 test rows");
        assert_same_table(&(now.join("\n") + "\n"), &then, method);
        assert!(now[0].contains("importance_fou"), "{method}: {}", now[0]);
    }
}

/// Issue 25, item 9: commands the suite never ran, each checked by value:
/// random search keeps the trial with the best dev score (the base config is
/// one of the trials), `--repeats` summarises the seeds' own results as mean
/// and sd, Twemoji's table beats its majority class by far, and `encoders
/// list` lists the three encoders.
#[test]
fn search_repeats_twemoji_and_encoders_list_run_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let base = [
        "multiview",
        "--data",
        "mfeat",
        "--modalities",
        "fou,zer",
        "--fusion",
        "gmu",
        "--no-single",
        "--epochs",
        "2",
        "--hidden",
        "8",
    ];
    let dev =
        |out: &str| read_json(&Path::new(out).join("fou+zer/results.json"))[0]["dev"]["f1"]["macro_"].as_f64().unwrap();
    let one = o("one");
    assert!(gmu(&[&base[..], &["--out", &one]].concat()).status.success());
    let searched = o("searched");
    let run = gmu(&[&base[..], &["--trials", "3", "--out", &searched]].concat());
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(dev(&searched) >= dev(&one), "the search keeps its best trial: {} < {}", dev(&searched), dev(&one));
    // --repeats: the summary's mean and sd are those of the seeds' own results.
    let repeated = o("repeated");
    let run = gmu(&[&base[..], &["--repeats", "2", "--out", &repeated]].concat());
    assert!(run.status.success(), "{}", stderr(&run));
    let set = Path::new(&repeated).join("fou+zer");
    let acc: Vec<f64> = (0..2)
        .map(|k| read_json(&set.join(format!("seed-{k}/results.json")))[0]["test"]["accuracy"].as_f64().unwrap())
        .collect();
    let summary = read_json(&set.join("summary.json"));
    let mean = (acc[0] + acc[1]) / 2.0;
    let sd = ((acc[0] - mean).powi(2) + (acc[1] - mean).powi(2)).sqrt(); // n − 1 = 1
    assert!((summary[0]["accuracy"][0].as_f64().unwrap() - mean).abs() < 1e-12, "{summary} vs {acc:?}");
    assert!((summary[0]["accuracy"][1].as_f64().unwrap() - sd).abs() < 1e-9, "{summary} vs {acc:?}");
    // Twemoji: the majority class is 77 of 382 test pictures (20 %).
    let tw = o("twemoji");
    let run = gmu(&["multiview", "--data", "twemoji", "--fusion", "gmu", "--no-single", "--epochs", "4", "--out", &tw]);
    assert!(run.status.success(), "{}", stderr(&run));
    let test = &read_json(&Path::new(&tw).join("image+text/results.json"))[0]["test"];
    assert_eq!(test["f1"]["support"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).max(), Some(77));
    assert!(test["accuracy"].as_f64().unwrap() > 0.4, "{test}");
    let list = gmu(&["encoders", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let text = String::from_utf8_lossy(&list.stdout);
    for name in ["minilm", "glove", "effnet-lite0"] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
    }
}

/// Issue 25, item 4: the robustness sweep by value. At σ = 0 each method
/// scores its clean test macro-F1; `relative_robustness` is the area under
/// the curve over the clean score times the span; the noise on a view is the
/// same for every method (a method's curve does not change when it is swept
/// alone); gated methods report `gate` and `gate_share`; and a run of
/// `mmimdb` is swept too.
#[test]
fn robustness_curves_by_value_with_the_same_noise_for_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = gmu(&[
        "multiview",
        "--data",
        "mfeat",
        "--modalities",
        "fou,zer",
        "--fusion",
        "gmu",
        "--fusion",
        "concat",
        "--epochs",
        "3",
        "--hidden",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let sweep = |run: &Path| {
        let r = gmu(&["robustness", "--run", run.to_str().unwrap(), "--levels", "0,1,3"]);
        assert!(r.status.success(), "{}", stderr(&r));
        read_json(&run.join("fou+zer/robustness.json"))
    };
    let report = sweep(&out);
    let results = read_json(&out.join("fou+zer/results.json"));
    let levels: Vec<f64> = report["levels"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for r in results.as_array().unwrap() {
        let method = r["method"].as_str().unwrap();
        for view in ["fou", "zer"] {
            let Some(curve) = report["methods"][method][view].as_array() else { continue };
            let scores: Vec<f64> = curve.iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(
                scores[0],
                r["test"]["f1"]["macro_"].as_f64().unwrap(),
                "{method} {view}: σ = 0 is the clean score"
            );
            let area: f64 =
                levels.windows(2).zip(scores.windows(2)).map(|(l, s)| (l[1] - l[0]) * (s[0] + s[1]) / 2.0).sum();
            let relative = area / (scores[0] * (levels[2] - levels[0]));
            let stated = report["relative_robustness"][method][view].as_f64().unwrap();
            assert!((stated - relative).abs() < 1e-12, "{method} {view}: {stated} vs {relative}");
        }
    }
    for key in ["gate", "gate_share"] {
        assert!(report[key]["gmu"]["fou"].as_array().is_some_and(|v| v.len() == 3), "{key}: {report}");
        assert!(report[key]["concat"].is_null(), "{key}: concat has no gate");
    }
    // gmu swept alone: the same noise, so the same curve.
    let alone = dir.path().join("alone");
    std::fs::create_dir_all(alone.join("fou+zer")).unwrap();
    for f in ["config.json", "model-0.safetensors"] {
        std::fs::create_dir_all(alone.join("fou+zer/gmu")).unwrap();
        std::fs::copy(out.join("fou+zer/gmu").join(f), alone.join("fou+zer/gmu").join(f)).unwrap();
    }
    let solo = sweep(&alone);
    assert_eq!(solo["methods"]["gmu"], report["methods"]["gmu"], "the noise depends on the view, not the methods");
    // A run of mmimdb is swept as well.
    let mm = dir.path().join("mm");
    let run = gmu(&[
        "mmimdb",
        "--data",
        &fixture("mmimdb_contiguous.h5"),
        "--fusion",
        "gmu",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--out",
        mm.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let r = gmu(&["robustness", "--run", mm.to_str().unwrap(), "--levels", "0,1"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let report = read_json(&mm.join("robustness.json"));
    assert!(report["relative_robustness"]["gmu"]["visual"].is_number(), "{report}");
}

/// The peak resident memory of `gmu args` (`VmHWM`, polled while it runs),
/// in bytes, and its output.
fn peak_memory(args: &[&str]) -> (u64, Output) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gmu"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kb) = text.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1))
        {
            peak = peak.max(kb.parse::<u64>().unwrap_or(0) * 1024);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (peak, child.wait_with_output().unwrap())
}

/// Issue 25, item 7: `predict` reads view files a chunk at a time, so its
/// memory stays flat in the number of rows (docs/models.md: one million rows
/// in 22 MB): the peak for 1,000,000 rows is within 16 MB of the peak for
/// 100,000, and under 64 MB (the rows alone, read whole, would be 24 MB of
/// floats before any output).
#[test]
fn predict_memory_stays_flat_in_the_number_of_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let model = dir.path().join("m");
    let files = format!("{a},{b}");
    train_gmu(&files, &y, &model, &[]);
    let rows_of = |n: usize| {
        let sub = dir.path().join(format!("n{n}"));
        std::fs::create_dir_all(&sub).unwrap();
        for (name, header) in [("a.csv", "a0,a1,a2"), ("b.csv", "b0,b1,b2")] {
            let mut text = String::with_capacity(n * 16 + 16);
            text.push_str(header);
            text.push('\n');
            for i in 0..n {
                text.push_str(&format!(
                    "{:.2},{:.2},{:.2}\n",
                    (i % 7) as f32 * 0.5,
                    (i % 5) as f32 * 0.25,
                    (i % 3) as f32
                ));
            }
            std::fs::write(sub.join(name), text).unwrap();
        }
        format!("{},{}", sub.join("a.csv").display(), sub.join("b.csv").display())
    };
    let m = model.to_str().unwrap();
    let (small, out) = peak_memory(&["predict", "--model", m, "--files", &rows_of(100_000)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (large, out) = peak_memory(&["predict", "--model", m, "--files", &rows_of(1_000_000)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!("predict peak memory: {:.1} MB for 100,000 rows, {:.1} MB for 1,000,000", mb(small), mb(large));
    assert!(large < small + (16 << 20), "{:.1} MB against {:.1} MB: not flat", mb(large), mb(small));
    assert!(large < 64 << 20, "{:.1} MB for a million rows", mb(large));
}

/// Issue 25, item 2 (a first block): the README's step-by-step block, read
/// from README.md and run line by line as written (with `$G` the binary under
/// test, in a fresh folder); the `eval` line prints what its comment says.
#[test]
fn the_readmes_step_by_step_block_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("cargo build --release && G=target/release/gmu").expect("the block is in the README");
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for line in block.lines().skip(1).filter(|l| l.starts_with("$G ")) {
        let (command, comment) = line.split_once('#').map_or((line, ""), |(c, k)| (c, k.trim()));
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_gmu")).args(&args).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "{line}: {}", stderr(&out));
        if let Some(expected) = comment.strip_prefix("gmu: ") {
            // "accuracy 0.99.. on 10000 samples, corr(M,z) 0.99..": `..` stands for any digits.
            let printed = String::from_utf8_lossy(&out.stdout).to_string();
            for part in expected.split(", ") {
                let fixed = part.split("..").next().unwrap();
                assert!(printed.contains(fixed), "{line}: {fixed:?} not in {printed}");
            }
        }
        ran += 1;
    }
    assert_eq!(ran, 5, "{block}");
    assert!(dir.path().join("maps/gate_map.png").is_file() && dir.path().join("gmu-model/config.json").is_file());
}

/// Issue 25, item 5: the 0 % column of the missing-view sweep is the clean
/// test score, for every method and every view.
#[test]
fn the_zero_missing_rate_is_the_clean_score() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = gmu(&[
        "multiview",
        "--data",
        "mfeat",
        "--modalities",
        "fou,zer",
        "--fusion",
        "gmu",
        "--fusion",
        "linear-sum",
        "--fusion",
        "avg-probs",
        "--epochs",
        "3",
        "--hidden",
        "8",
        "--missing-rates",
        "0,0.5,1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let results = read_json(&out.join("fou+zer/results.json"));
    let mut checked = 0;
    for r in results.as_array().unwrap() {
        for view in r["missing"].as_array().unwrap() {
            assert_eq!(view["rates"][0], 0.0);
            assert_eq!(view["macro_f1"][0], r["test"]["f1"]["macro_"], "{}: view {}", r["method"], view["view"]);
            assert_eq!(view["accuracy"][0], r["test"]["accuracy"], "{}: view {}", r["method"], view["view"]);
            checked += 1;
        }
    }
    assert!(checked >= 6, "{checked} curves");
}

/// Issue 25, item 6: `mmimdb --resume` after kills ends with the same bits,
/// as `multiview` does (the HDF5 fixture, the paper's default GMU).
#[test]
fn a_killed_mmimdb_run_resumes_to_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("mmimdb_contiguous.h5");
    let args = [
        "mmimdb",
        "--data",
        &data,
        "--fusion",
        "gmu",
        "--no-single",
        "--epochs",
        "4",
        "--patience",
        "4",
        "--hidden",
        "16",
        "--batch-size",
        "8",
    ];
    let (whole, killed) = killed_and_resumed(dir.path(), &args, &["2", "4", "3"]);
    assert_eq!(read_json(&whole.join("results.json"))[0]["test"], read_json(&killed.join("results.json"))[0]["test"]);
}

/// Runs `args` (a training command without `--out`) once whole and once
/// killed after each of `kills` training steps (`--resume` every time), then
/// resumed to the end; the two runs' weight files are the same bytes.
/// Returns the two output folders.
fn killed_and_resumed(dir: &Path, args: &[&str], kills: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let run = |out: &Path, abort: Option<&str>| {
        let o = out.to_str().unwrap();
        let env: Vec<(&str, &str)> = abort.map(|n| vec![("GMU_ABORT_AFTER_STEPS", n)]).unwrap_or_default();
        gmu_env(&[args, &["--resume", "--out", o]].concat(), &env)
    };
    let whole = dir.join("whole");
    let out = run(&whole, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let killed = dir.join("killed");
    for abort in kills {
        assert!(!run(&killed, Some(abort)).status.success(), "killed after {abort} steps");
    }
    let out = run(&killed, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let (a, b) = (model_files(&whole), model_files(&killed));
    assert!(!a.is_empty() && a == b, "the weights differ after the kills");
    (whole, killed)
}

/// Issue 25, item 6: the cnn engine (Twemoji's picture CNN) resumes a
/// killed run to the same bits too.
#[test]
fn a_killed_run_on_the_cnn_engine_resumes_to_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["multiview", "--data", "twemoji", "--fusion", "gmu", "--no-single", "--epochs", "3", "--patience", "3"];
    // Past the first epoch (about 17 steps), then mid-way through the third.
    let (whole, _) = killed_and_resumed(dir.path(), &args, &["20", "25"]);
    assert_eq!(read_json(&whole.join("image+text/gmu/config.json"))["members"][0]["engine"], "cnn");
}

/// Issue 25, item 1: the imputation means are the training rows' column
/// means over the observed cells, by value, and a prediction with
/// `--impute mean` is the prediction of the row with those means written in.
#[test]
fn impute_means_and_imputed_predictions_by_value() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let mut lines: Vec<String> = std::fs::read_to_string(&a).unwrap().lines().map(String::from).collect();
    lines[4] = format!("{},,{}", lines[4].split(',').next().unwrap(), lines[4].split(',').nth(2).unwrap());
    std::fs::write(&a, lines.join("\n") + "\n").unwrap();
    let model = dir.path().join("m");
    let files = format!("{a},{b}");
    train_gmu(&files, &y, &model, &["--impute", "mean"]);
    let m = model.to_str().unwrap();
    // The training rows, as `predict --split train` makes them again from the recorded seed.
    let train =
        gmu(&["predict", "--model", m, "--files", &files, "--labels", &y, "--split", "train", "--impute", "mean"]);
    assert!(train.status.success(), "{}", stderr(&train));
    let rows: Vec<usize> = String::from_utf8_lossy(&train.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(rows.len() > 150 && rows.len() < 240, "{} training rows", rows.len());
    let cells: Vec<Vec<f64>> =
        lines[1..].iter().map(|l| l.split(',').map(|c| c.parse::<f64>().unwrap_or(f64::NAN)).collect()).collect();
    let config = read_json(&model.join("config.json"));
    let means = config["members"][0]["scalers"][0]["impute"].as_array().unwrap();
    for j in 0..3 {
        let seen: Vec<f64> = rows.iter().map(|&r| cells[r][j]).filter(|x| !x.is_nan()).collect();
        let mean = seen.iter().sum::<f64>() / seen.len() as f64;
        assert!((means[j].as_f64().unwrap() - mean).abs() < 1e-5, "column {j}: {} vs {mean}", means[j]);
    }
    // Row 3 (line 4) with its blank cell filled by the stored mean, predicted plainly.
    let filled = dir.path().join("filled");
    std::fs::create_dir_all(&filled).unwrap();
    let mut by_hand = lines.clone();
    by_hand[4] = by_hand[4].replacen(",,", &format!(",{},", means[1].as_f64().unwrap() as f32), 1);
    std::fs::write(filled.join("a.csv"), by_hand.join("\n") + "\n").unwrap();
    std::fs::copy(&b, filled.join("b.csv")).unwrap();
    let imputed = gmu(&["predict", "--model", m, "--files", &files, "--impute", "mean"]);
    let plain = gmu(&[
        "predict",
        "--model",
        m,
        "--files",
        &format!("{},{}", filled.join("a.csv").display(), filled.join("b.csv").display()),
    ]);
    assert!(imputed.status.success() && plain.status.success(), "{}{}", stderr(&imputed), stderr(&plain));
    // Line 4 of the CSV is data row 3: the fifth line of the output (after the header).
    assert!(stderr(&imputed).contains("imputed 1 missing cells"), "{}", stderr(&imputed));
    let row = |out: &Output| String::from_utf8_lossy(&out.stdout).lines().nth(4).unwrap().to_string();
    assert!(row(&imputed).starts_with("3,"), "{}", row(&imputed));
    assert_eq!(row(&imputed), row(&plain));
}

/// Issue 20, item 15: `/dev/zero` or a FIFO where a file is required (a
/// model's config.json, a view file, a label file) is a clear error, never an
/// unbounded read or a hang.
#[test]
fn devices_and_fifos_are_refused_where_a_file_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let model = dir.path().join("model");
    let files = format!("{a},{b}");
    train_gmu(&files, &y, &model, &[]);
    let zero = dir.path().join("zero-model");
    std::fs::create_dir_all(&zero).unwrap();
    std::fs::copy(model.join("model-0.safetensors"), zero.join("model-0.safetensors")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join("config.json")).unwrap();
    assert_refused(&gmu(&["predict", "--model", zero.to_str().unwrap(), "--files", &files]), "not a regular file");
    let fifo = dir.path().join("pipe.csv");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let m = model.to_str().unwrap();
    assert_refused(
        &gmu(&["predict", "--model", m, "--files", &format!("{a},{}", fifo.display())]),
        "pipe.csv: is not a regular file",
    );
    assert_refused(
        &gmu(&["eval", "--model", m, "--files", &files, "--labels", "/dev/zero"]),
        "/dev/zero: is not a regular file",
    );
    assert_refused(
        &gmu(&[
            "multiview",
            "--files",
            &files,
            "--labels",
            fifo.to_str().unwrap(),
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ]),
        "pipe.csv: is not a regular file",
    );
}

/// Issue 20, items 8 and 20: `eval` matches the labels to the model's
/// classes by name: a label file with fewer classes (it used to hit an
/// assertion in the metrics) or in another order scores as the full one
/// does on the same rows; a class the model does not know is an error.
#[test]
fn eval_matches_labels_to_the_models_classes_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = write_views(dir.path());
    let model = dir.path().join("model");
    let files = format!("{a},{b}");
    train_gmu(&files, &y, &model, &[]);
    // The rows of classes dog and eel only: views and labels cut to them.
    let keep: Vec<usize> = (0..240).filter(|i| i % 3 != 0).collect();
    let cut = |path: &str, name: &str| {
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut out = vec![lines[0]];
        out.extend(keep.iter().map(|&i| lines[i + 1]));
        let p = dir.path().join(name);
        std::fs::write(&p, out.join("\n") + "\n").unwrap();
        p.to_str().unwrap().to_string()
    };
    let (a2, b2, y2) = (cut(&a, "a2.csv"), cut(&b, "b2.csv"), cut(&y, "y2.csv"));
    let eval = |labels: &str| {
        let out = gmu(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--files",
            &format!("{a2},{b2}"),
            "--labels",
            labels,
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let two = eval(&y2);
    assert!(two["accuracy"].as_f64().unwrap() > 0.6, "{two}");
    // The same rows, the class names renamed in the file: an unknown class is refused.
    let renamed = dir.path().join("y3.csv");
    std::fs::write(&renamed, std::fs::read_to_string(&y2).unwrap().replace("dog", "fox")).unwrap();
    assert_refused(
        &gmu(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--files",
            &format!("{a2},{b2}"),
            "--labels",
            renamed.to_str().unwrap(),
        ]),
        "label 'fox' is not one the model knows (cat, dog, eel)",
    );
    // Scored by name, the two-class file agrees with predict's decisions row by row.
    let p = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &format!("{a2},{b2}")]);
    let text = String::from_utf8_lossy(&p.stdout).to_string();
    let truth: Vec<String> = std::fs::read_to_string(&y2).unwrap().lines().skip(1).map(String::from).collect();
    let right = text.lines().skip(1).zip(&truth).filter(|(l, t)| l.split(',').nth(1) == Some(t.as_str())).count();
    let accuracy = right as f64 / truth.len() as f64;
    assert!((two["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-9, "{two} vs {accuracy}");
    // Issue 20, item 32: files named unlike the model's views feed them in
    // order (the pairing is printed), or by name with view=path.
    assert!(stderr(&p).contains("view 'a' ← ") && stderr(&p).contains("a2.csv (by order"), "{}", stderr(&p));
    let named = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &format!("b={b2},a={a2}")]);
    assert!(named.status.success(), "{}", stderr(&named));
    assert_eq!(String::from_utf8_lossy(&named.stdout), text, "view=path gives the same rows");
    assert_refused(
        &gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &format!("b={b2},{a2}")]),
        "name every file (view=path,view=path) or none",
    );
}

/// Issue 20, items 7, 11, 16 and 17: a model directory is checked before a
/// tensor is made: sizes that would overflow or pass the memory budget, a
/// scaler that would turn inputs into NaN, weights changed after they were
/// saved (bit-flipped or swapped). Each is one clear error, never a panic or
/// NaN probabilities with exit 0.
#[test]
fn a_damaged_model_directory_is_refused_before_it_is_used() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model_v2/mfeat-gmu");
    let dir = tempfile::tempdir().unwrap();
    let copy = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let model = dir.path().join(name);
        std::fs::create_dir_all(&model).unwrap();
        std::fs::copy(fixture.join("model-0.safetensors"), model.join("model-0.safetensors")).unwrap();
        let mut config = read_json(&fixture.join("config.json"));
        edit(&mut config);
        std::fs::write(model.join("config.json"), config.to_string()).unwrap();
        model
    };
    let predict = |model: &Path| gmu(&["predict", "--model", model.to_str().unwrap(), "--data", "mfeat"]);
    let huge = copy("huge", &|c| c["members"][0]["spec"]["hidden"] = serde_json::json!(u64::MAX));
    assert_refused(&predict(&huge), "would need more than 2^64 bytes of memory");
    let big = copy("big", &|c| c["members"][0]["spec"]["hidden"] = serde_json::json!(1u64 << 24));
    // (The budget pinned, so the test does not depend on this machine's memory.)
    let pinned = [("GMU_MEMORY_BUDGET", "1G")];
    assert_refused(
        &gmu_env(&["predict", "--model", big.to_str().unwrap(), "--data", "mfeat"], &pinned),
        "more than the budget of 1.0 GiB",
    );
    // Issue 20, item 22: weights of another shape name the tensors (burn said "Tensor not found:").
    let other = copy("other", &|c| c["members"][0]["spec"]["head"] = serde_json::json!("linear"));
    assert_refused(&predict(&other), "tensors missing: head.GmuLinear.gmu.transforms.0.weight");
    let tiny = copy("tiny", &|c| c["members"][0]["scalers"][0]["scale"][3] = serde_json::json!(1e-45));
    assert_refused(&predict(&tiny), "column 3: scale");
    // Issue 25, item 3: a weight that is NaN is refused on load (this fixture records no checksum,
    // so the check on the values is what stops it).
    let nan = copy("nan", &|_| {});
    let mut bytes = std::fs::read(nan.join("model-0.safetensors")).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let meta: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header]).unwrap();
    let (_, tensor) =
        meta.as_object().unwrap().iter().find(|(k, v)| *k != "__metadata__" && v["dtype"] == "F32").unwrap();
    let start = 8 + header + tensor["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[start..start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(nan.join("model-0.safetensors"), &bytes).unwrap();
    assert_refused(&predict(&nan), "holds NaN or infinity");
    // A model saved now records its weights' sha256; a flipped bit or two
    // swapped tensors of one shape are refused.
    let out = dir.path().join("run");
    let run =
        gmu(&["train", "--data", "mfeat", "--modalities", "fou,zer", "--model", "gmu", "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["weights_sha256"].as_array().map(Vec::len), Some(1), "{config}");
    assert!(predict(&out).status.success());
    let weights = out.join("model-0.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x10;
    std::fs::write(&weights, &bytes).unwrap();
    assert_refused(&predict(&out), "the weights were changed or damaged after they were saved");
}

/// Model directories of format 1 (written before the training config was
/// unified; see tests/fixtures/model_v1/README.md) still load and predict
/// exactly what the version that wrote them predicted.
#[test]
fn format_1_model_directories_predict_as_they_did() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model_v1");
    let f = |name: &str| fixtures.join(name).to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.csv");
    let run =
        gmu(&["predict", "--model", &f("synthetic-gmu"), "--data", &f("toy.csv"), "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_same_table(
        &std::fs::read_to_string(&out).unwrap(),
        &std::fs::read_to_string(f("synthetic-gmu.predictions.csv")).unwrap(),
        "synthetic-gmu",
    );
    let run = gmu(&[
        "predict",
        "--model",
        &f("mfeat-gmu"),
        "--data",
        "mfeat",
        "--split",
        "test",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    // Every one of the 400 test rows (issue 25, item 10; were: the first 30).
    let now = std::fs::read_to_string(&out).unwrap();
    assert_eq!(now.lines().count(), 401);
    assert_same_table(&now, &std::fs::read_to_string(f("mfeat-gmu.predictions.csv")).unwrap(), "mfeat-gmu");
    // The synthetic model is still one `eval` takes.
    let eval = gmu(&["eval", "--model", &f("synthetic-gmu"), "--data", &f("toy.csv"), "--json"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
}

/// `train`, `eval` and `plot` take every data source: the synthetic
/// experiment's GMU trains on two mfeat views, `eval` scores it, `predict`
/// remakes its test split and prints the same test score as `train`, and
/// `plot`, whose maps need the synthetic data's two inputs, says so.
#[test]
fn train_eval_and_plot_take_every_data_source() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let m = model.to_str().unwrap();
    let run = gmu(&[
        "train",
        "--data",
        "mfeat",
        "--modalities",
        "fou,zer",
        "--hidden",
        "16",
        "--steps",
        "150",
        "--restarts",
        "1",
        "--out",
        m,
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let out = String::from_utf8(run.stdout).unwrap();
    assert!(out.contains("test (400 samples) accuracy"), "{out}");
    let macro_f1 = |text: &str| -> f64 {
        let at = text.find("macro-F1 ").unwrap() + 9;
        text[at..at + 6].parse().unwrap()
    };
    let trained = macro_f1(&out);
    assert!(trained > 0.6, "{out}");
    let config = read_json(&model.join("config.json"));
    assert_eq!(config["training"]["schedule"]["kind"], "steps");
    assert_eq!(config["views"][0]["name"], "fou");
    let predict = gmu(&[
        "predict",
        "--model",
        m,
        "--data",
        "mfeat",
        "--split",
        "test",
        "--out",
        dir.path().join("p.csv").to_str().unwrap(),
    ]);
    assert!(predict.status.success(), "{}", stderr(&predict));
    assert_eq!(macro_f1(&String::from_utf8(predict.stdout).unwrap()), trained);
    let eval = gmu(&["eval", "--model", m, "--data", "mfeat", "--json"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let scores: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert!(scores["accuracy"].as_f64().unwrap() > 0.6, "{scores}");
    assert_refused(
        &gmu(&["plot", "--model", m, "--data", "mfeat", "--out", dir.path().join("maps").to_str().unwrap()]),
        "plot draws the gate and prediction maps",
    );
    assert_refused(
        &gmu(&["train", "--data", "mfeat", "--out", &format!("{m}2")]),
        "pick two of fou, fac, kar, pix, zer, mor",
    );
}

/// The hostile-input findings of issue 8 (items 1–20), each refused before
/// any work with one line that names the flag or the file.
#[test]
fn hostile_flags_and_files_get_one_line_errors_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).unwrap();
        p(name)
    };
    let csv = p("toy.csv");
    assert!(gmu(&["synth", "--out", &csv, "--n", "200"]).status.success());
    let m = p("m");
    let huge = "18446744073709551615";
    // 1–3: sizes beyond memory, checked with overflow-free arithmetic against the budget.
    assert_refused(
        &gmu(&["train", "--data", &csv, "--out", &m, "--steps", huge]),
        "invalid --steps: the loss log of 18446744073709551615 steps would need more than 2^64 bytes",
    );
    assert_refused(&gmu(&["synth", "--out", &p("x.csv"), "--n", huge]), "invalid --n:");
    assert_refused(&gmu(&["synth", "--out", &p("x.csv"), "--dim", huge]), "invalid --dim:");
    assert_refused(&gmu(&["protocol", "--seeds", "2", "--test-size", huge]), "invalid --test-size:");
    assert_refused(&gmu(&["protocol", "--seeds", huge]), "invalid --seeds:");
    assert_refused(&gmu(&["demo", "--out", &p("demo"), "--test-size", huge]), "invalid --test-size:");
    assert!(!dir.path().join("demo").exists(), "a refused demo leaves no folder");
    assert_refused(
        &gmu(&["multiview", "--data", "mfeat", "--modalities", "fou,zer", "--hidden", huge, "--out", &p("mv")]),
        "invalid --hidden:",
    );
    // The budget pinned (issue 25, item 7), so these do not depend on this machine's memory.
    let pinned = [("GMU_MEMORY_BUDGET", "4G")];
    assert_refused(
        &gmu_env(&["train", "--data", &csv, "--out", &m, "--hidden", "100000000"], &pinned),
        "more than the budget of 4.0 GiB",
    );
    assert_refused(
        &gmu_env(
            &["multiview", "--data", "mfeat", "--modalities", "fou,zer", "--hidden", "100000", "--out", &p("mv")],
            &pinned,
        ),
        "more than the budget of 4.0 GiB",
    );
    assert_refused(
        &gmu(&["multiview", "--data", "mfeat", "--modalities", "fou,zer", "--repeats", huge, "--out", &p("mv")]),
        "invalid --repeats:",
    );
    // 4, 5: NaN and out-of-range numbers.
    for t in ["nan", "-1", "5"] {
        assert_refused(&gmu(&["protocol", "--seeds", "2", &format!("--tie-tolerance={t}")]), "invalid --tie-tolerance");
    }
    for v in ["nan", "-1"] {
        assert_refused(
            &gmu(&[
                "multiview",
                "--data",
                "mfeat",
                "--modalities",
                "fou,zer",
                &format!("--max-norm={v}"),
                "--out",
                &p("mv"),
            ]),
            "invalid --max-norm",
        );
    }
    // 6: a diverging run stops with an error and saves nothing.
    let diverge = gmu(&[
        "multiview",
        "--data",
        "mfeat",
        "--modalities",
        "fou,zer",
        "--fusion",
        "gmu",
        "--no-single",
        "--lr",
        "1e30",
        "--epochs",
        "2",
        "--out",
        &p("lr"),
    ]);
    assert_refused(&diverge, "non-finite value: gmu");
    assert!(!dir.path().join("lr/fou+zer/gmu/model-0.safetensors").exists());
    // 7: means beyond f32.
    assert_refused(&gmu(&["synth", "--out", &p("x.csv"), "--mu-v", "1e39", "8"]), "invalid --mu-v");
    // 8: the header is the layout exactly.
    for header in ["v0,v2,t0,t2,c", "v0,v0,t0,c", "v0,t0,c,extra"] {
        let f = write("bad.csv", &format!("{header}\n1,2,3,4,0\n"));
        assert_refused(
            &gmu(&["train", "--data", &f, "--out", &m]),
            &format!("the header `{header}` is not the layout"),
        );
    }
    // 9: one class.
    let one = write("one.csv", "v0,t0,c\n1,2,0\n2,3,0\n3,3,0\n");
    assert_refused(&gmu(&["train", "--data", &one, "--out", &m]), "the training rows hold a single class ('0')");
    // 10: corr(M, z) is undefined for a constant M.
    let constant = write("constm.csv", "v0,t0,c,m\n1,2,0,1\n2,3,1,1\n3,3,0,1\n5,1,1,1\n");
    assert!(
        gmu(&["train", "--data", &constant, "--out", &p("m4"), "--steps", "5", "--restarts", "1"]).status.success()
    );
    let eval = gmu(&["eval", "--model", &p("m4"), "--data", &constant, "--json"]);
    let scores: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert!(scores["corr_m_z"].is_null(), "{scores}");
    // 11: a scaler with a zero scale.
    let config_path = dir.path().join("m4/config.json");
    let original = std::fs::read_to_string(&config_path).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&original).unwrap();
    config["members"][0]["scalers"][0]["scale"][0] = serde_json::json!(0.0);
    std::fs::write(&config_path, config.to_string()).unwrap();
    assert_refused(
        &gmu(&["eval", "--model", &p("m4"), "--data", &constant]),
        "scale 0e0 (expected a number in [1e-30, 1e30]",
    );
    // 12: combinations the help rules out.
    let mv = |extra: &[&str]| {
        let mut a = vec!["multiview", "--data", "mfeat", "--out", "unused"];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| gmu(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_refused(&run(mv(&["--modalities", "fou,fou"])), "'fou' is listed twice");
    assert_refused(&run(mv(&["--modalities", "fou,zer", "--fusion", "concat", "--head", "linear"])), "invalid --head");
    assert_refused(&run(mv(&["--modalities", "fou,zer", "--gate-softmax"])), "invalid --gate-softmax");
    // 13: no command writes over its input.
    std::fs::write(&config_path, &original).unwrap();
    assert_refused(&gmu(&["eval", "--model", &p("m4"), "--data", &csv, "--predictions", &csv]), "is the input data");
    // 14: a balanced draw of an odd size.
    assert_refused(&gmu(&["synth", "--out", &p("b.csv"), "--balanced", "--n", "5"]), "5 is odd");
    // 15, 16: the file at fault is named.
    let a = write("a.csv", "x,y\n1,2\n3,4\n5,6\n");
    let short = write("b_short.csv", "p,q\n1,2\n");
    let y = write("y.csv", "y\n0\n1\n1\n");
    let y_short = write("y_short.csv", "y\n0\n1\n");
    assert_refused(
        &gmu(&["multiview", "--files", &format!("{a},{short}"), "--labels", &y, "--out", &p("mv")]),
        "b_short.csv: 1 rows",
    );
    assert_refused(&gmu(&["multiview", "--files", &a, "--labels", &y_short, "--out", &p("mv")]), "y_short.csv");
    assert_refused(
        &gmu(&["multiview", "--files", &a, "--label-column", "nope", "--out", &p("mv")]),
        "no column 'nope' in",
    );
    // 18: an edited config is one line, whatever burn says.
    let mut edited: serde_json::Value = serde_json::from_str(&original).unwrap();
    edited["members"][0]["spec"]["kind"] = serde_json::json!("concat");
    edited["members"][0]["spec"]["head"] = serde_json::json!("maxout");
    std::fs::write(&config_path, edited.to_string()).unwrap();
    let out = gmu(&["eval", "--model", &p("m4"), "--data", &constant]);
    assert!(!out.status.success() && stderr(&out).lines().count() == 1, "{}", stderr(&out));
    // 19: an OS error is said once.
    let missing = gmu(&["train", "--data", &p("nope.csv"), "--out", &m]);
    assert_refused(&missing, "nope.csv: No such file or directory (os error 2)");
    assert_eq!(stderr(&missing).matches("os error 2").count(), 1, "{}", stderr(&missing));
    // 20: an output that cannot be written is found before any work.
    let file = write("afile", "");
    for args in [
        vec!["multiview", "--data", "mfeat", "--out"],
        vec!["protocol", "--seeds", "2", "--out"],
        vec!["train", "--data", &csv, "--out"],
        vec!["synth", "--out"],
    ] {
        let mut args = args.clone();
        let target = format!("{file}/out");
        args.push(&target);
        assert_refused(&gmu(&args), "afile is a file, not a folder");
    }
}

/// Item 22: the same seed writes the same bytes, with one file mode.
#[test]
fn same_seed_same_model_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for run in ["a", "b", "c"] {
        let out = dir.path().join(run);
        assert!(
            gmu(&["demo", "--seed", "3", "--resolution", "20", "--test-size", "100", "--out", out.to_str().unwrap()])
                .status
                .success()
        );
        let bytes = std::fs::read(out.join("gmu/model-0.safetensors")).unwrap();
        seen.push(bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("gmu/model-0.safetensors"), mode("gmu/config.json"));
        }
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "the weights' bytes differ between runs of one seed");
}

/// Item 21: an output folder holds one complete run. A run with fewer
/// methods replaces the folder whole (no `gmu/` or `gates-gmu.png` of the
/// earlier run beside the new `results.json`); a failed run leaves the old
/// folder as it was and no `.partial` behind.
#[test]
fn output_folders_never_mix_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = out.to_str().unwrap();
    let base = [
        "multiview",
        "--data",
        "mfeat",
        "--modalities",
        "fou,zer",
        "--no-single",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--out",
        o,
    ];
    let mut first = base.to_vec();
    first.extend(["--fusion", "gmu", "--fusion", "moe", "--experts", "logistic", "--tied-gates", "true"]);
    assert!(gmu(&first).status.success());
    assert!(out.join("fou+zer/gmu").is_dir() && out.join("fou+zer/gates-gmu.png").exists());
    let mut second = base.to_vec();
    second.extend(["--fusion", "concat", "--force"]);
    assert!(gmu(&second).status.success());
    let set = out.join("fou+zer");
    assert!(set.join("concat").is_dir());
    assert!(
        !set.join("gmu").exists() && !set.join("gates-gmu.png").exists() && !set.join("moe-logistic-tied").exists()
    );
    assert_eq!(read_json(&set.join("results.json")).as_array().unwrap().len(), 1);
    // A run that fails (here: it diverges) leaves the previous one whole.
    let mut failing = base.to_vec();
    failing.extend(["--fusion", "gmu", "--lr", "1e30", "--force"]);
    assert!(!gmu(&failing).status.success());
    assert!(set.join("concat").is_dir() && !dir.path().join("run.partial").exists());
    // plot replaces its maps folder whole as well.
    let csv = dir.path().join("t.csv");
    assert!(gmu(&["synth", "--out", csv.to_str().unwrap()]).status.success());
    let model = dir.path().join("m");
    assert!(
        gmu(&["train", "--data", csv.to_str().unwrap(), "--model", "logreg", "--out", model.to_str().unwrap()])
            .status
            .success()
    );
    let maps = dir.path().join("maps");
    std::fs::create_dir_all(&maps).unwrap();
    std::fs::write(maps.join("gate_map.png"), "another model's map").unwrap();
    let plot = [
        "plot",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--resolution",
        "20",
        "--out",
        maps.to_str().unwrap(),
    ];
    assert_refused(&gmu(&plot), "already holds files that no `gmu plot` run wrote");
    let mut forced = plot.to_vec();
    forced.push("--force");
    assert!(gmu(&forced).status.success());
    assert!(!maps.join("gate_map.png").exists(), "logistic regression has no gate map; the old one is gone");
    assert!(maps.join("prediction_map.png").exists());
    // A folder of one's own is not replaced by surprise.
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    assert_refused(
        &gmu(&["demo", "--resolution", "20", "--test-size", "50", "--out", mine.to_str().unwrap()]),
        "pass --force to replace it",
    );
    assert!(mine.join("notes.txt").exists());
}

fn gmu_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gmu"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the binary runs")
}

/// Every model file under `dir`, by relative path, with its bytes.
fn model_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "safetensors") {
                out.push((path.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Issue 8: a run killed at random points (the abort hook: no cleanup, as
/// `kill -9`) and resumed with `--resume` ends with the same bits as an
/// uninterrupted run, on burn's autodiff (the maxout models, a mixture of
/// experts, the single views) and on the GEMM engine (GMU with a linear head).
#[test]
fn a_killed_run_resumes_to_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "burn",
            vec!["--fusion", "gmu", "--fusion", "moe", "--experts", "logistic", "--tied-gates", "true"],
            [7, 45, 90],
        ),
        ("dense", vec!["--fusion", "gmu", "--head", "linear", "--no-single"], [7, 30, 20]),
    ];
    for (tag, extra, aborts) in cases {
        let run = |out: &Path, resume: bool, abort: Option<usize>| {
            let o = out.to_str().unwrap().to_string();
            let mut args = vec![
                "multiview",
                "--data",
                "mfeat",
                "--modalities",
                "fou,zer",
                "--epochs",
                "5",
                "--patience",
                "3",
                "--hidden",
                "8",
                "--out",
                &o,
            ];
            args.extend(extra.iter().copied());
            if resume {
                args.push("--resume");
            }
            let n = abort.map(|n| n.to_string());
            let env: Vec<(&str, &str)> = n.as_deref().map(|n| vec![("GMU_ABORT_AFTER_STEPS", n)]).unwrap_or_default();
            gmu_env(&args, &env)
        };
        let whole = dir.path().join(format!("{tag}-whole"));
        let out = run(&whole, false, None);
        assert!(out.status.success(), "{}", stderr(&out));
        let killed = dir.path().join(format!("{tag}-killed"));
        // Killed three times: early in the first model, mid-run, and late.
        for abort in aborts {
            let out = run(&killed, true, Some(abort));
            assert!(!out.status.success(), "{tag}: the run should have been killed after {abort} steps");
            assert!(dir.path().join(format!("{tag}-killed.partial")).is_dir() && !killed.exists(), "{tag}");
        }
        let out = run(&killed, true, None);
        assert!(out.status.success(), "{}", stderr(&out));
        let (a, b) = (model_files(&whole), model_files(&killed));
        assert!(!a.is_empty());
        assert_eq!(a.iter().map(|(p, _)| p).collect::<Vec<_>>(), b.iter().map(|(p, _)| p).collect::<Vec<_>>(), "{tag}");
        for ((path, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{tag}: {path} differs after the kills");
        }
        let scores = |d: &Path| {
            read_json(&d.join("fou+zer/results.json"))
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["test"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(scores(&whole), scores(&killed), "{tag}");
        assert!(
            !dir.path().join(format!("{tag}-killed/fou+zer/gmu.checkpoint")).exists(),
            "checkpoints are removed once a method is saved"
        );
    }
    // Resuming with other flags is refused, not mixed in.
    let o = dir.path().join("other");
    let o = o.to_str().unwrap();
    let base = [
        "multiview",
        "--data",
        "mfeat",
        "--modalities",
        "fou,zer",
        "--fusion",
        "gmu",
        "--no-single",
        "--epochs",
        "3",
        "--hidden",
        "8",
        "--out",
        o,
    ];
    assert!(!gmu_env(&base, &[("GMU_ABORT_AFTER_STEPS", "5")]).status.success());
    let mut other = base.to_vec();
    other.extend(["--lr", "0.01", "--resume"]);
    assert_refused(&gmu(&other), "with other flags");
}

/// Issue 20, item 27: `--help` offers only values a flag accepts (a text
/// encoder flag lists no image encoder) and shows no rustdoc link markup.
#[test]
fn help_offers_only_accepted_values() {
    let commands = [
        "demo",
        "synth",
        "train",
        "eval",
        "predict",
        "plot",
        "protocol",
        "multiview",
        "mmimdb",
        "robustness",
        "encode",
        "encoders",
    ];
    for command in commands {
        let out = gmu(&[command, "--help"]);
        assert!(out.status.success(), "{command}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(!help.contains("[`") && !help.contains("`]"), "{command} --help shows link markup:\n{help}");
    }
    let help = String::from_utf8_lossy(&gmu(&["mmimdb", "--help"]).stdout).to_string();
    let text = &help[help.find("--text-encoder").unwrap()..help.find("--image-encoder").unwrap()];
    assert!(text.contains("minilm") && !text.contains("effnet-lite0"), "{text}");
    assert_refused(
        &gmu(&["mmimdb", "--archive", "x", "--text-encoder", "effnet-lite0"]),
        "invalid value 'effnet-lite0'",
    );
}

/// Issue 25: the maxout and dense engines (the paper's model and the GMU
/// classifier) give the same weight files, byte for byte, on one thread and
/// on four, as the cnn engine's own test shows for it.
#[test]
fn the_maxout_and_dense_engines_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, extra) in [("maxout", vec![]), ("dense", vec!["--head", "linear"])] {
        let run = |threads: &str| {
            let out = dir.path().join(format!("{engine}-{threads}"));
            let o = out.to_str().unwrap().to_string();
            let mut args = vec![
                "multiview",
                "--data",
                "mfeat",
                "--modalities",
                "fou,zer",
                "--fusion",
                "gmu",
                "--no-single",
                "--epochs",
                "3",
                "--hidden",
                "16",
                "--engine",
                engine,
                "--out",
                &o,
            ];
            args.extend(extra.iter().copied());
            let done = gmu_env(&args, &[("RAYON_NUM_THREADS", threads)]);
            assert!(done.status.success(), "{engine} on {threads}: {}", stderr(&done));
            let config = read_json(&out.join("fou+zer/gmu/config.json"));
            assert_eq!(config["members"][0]["engine"], engine, "{config}");
            model_files(&out)
        };
        let (one, four) = (run("1"), run("4"));
        assert!(!one.is_empty());
        assert!(one == four, "{engine}: the weights differ between 1 and 4 threads");
    }
}

/// Issue 20, item 5: a run killed right after any one checkpoint file
/// (between the weights and the manifest, between the weights and the
/// optimiser's state, …) resumes to the same bits: every file carries its
/// epoch and the manifest, `state.json`, is renamed last.
#[test]
fn a_run_killed_between_checkpoint_files_resumes_to_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("burn", vec!["--fusion", "moe", "--experts", "logistic", "--no-single"]),
        ("maxout", vec!["--fusion", "gmu", "--no-single"]),
        ("dense", vec!["--fusion", "gmu", "--head", "linear", "--no-single"]),
    ];
    for (tag, extra) in cases {
        let run = |out: &Path, abort: Option<usize>| {
            let o = out.to_str().unwrap().to_string();
            let mut args = vec![
                "multiview",
                "--data",
                "mfeat",
                "--modalities",
                "fou,zer",
                "--epochs",
                "4",
                "--patience",
                "4",
                "--hidden",
                "8",
                "--out",
                &o,
                "--resume",
            ];
            args.extend(extra.iter().copied());
            let n = abort.map(|n| n.to_string());
            let env: Vec<(&str, &str)> = n.as_deref().map(|n| vec![("GMU_ABORT_AFTER_WRITES", n)]).unwrap_or_default();
            gmu_env(&args, &env)
        };
        let whole = dir.path().join(format!("{tag}-whole"));
        let out = run(&whole, None);
        assert!(out.status.success(), "{}", stderr(&out));
        // A run killed after its k-th file, for every k until a run gets to
        // the end, then resumed: the kill lands once on every file of the
        // first epochs' checkpoints.
        let mut kills = 0;
        for k in 1..20 {
            let killed = dir.path().join(format!("{tag}-killed-{k}"));
            if run(&killed, Some(k)).status.success() {
                break;
            }
            kills += 1;
            let out = run(&killed, None);
            assert!(out.status.success(), "{}", stderr(&out));
            let (a, b) = (model_files(&whole), model_files(&killed));
            assert!(!a.is_empty() && a.len() == b.len());
            for ((path, x), (_, y)) in a.iter().zip(&b) {
                assert!(x == y, "{tag}: {path} differs after a kill after checkpoint file {k}");
            }
        }
        assert!(kills >= 6, "{tag}: only {kills} kill points");
    }
}

#[test]
fn raw_mmimdb_archive_trains_end_to_end_and_predicts_a_plot_and_a_poster() {
    use gmu::encoders::EncoderKind;
    if !encoders_present(&[EncoderKind::MiniLm, EncoderKind::EffnetLite0]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mmimdb");
    write_raw_archive(&root, 60);
    let out = dir.path().join("run");
    let args = [
        "mmimdb",
        "--archive",
        root.to_str().unwrap(),
        "--fusion",
        "gmu",
        "--no-single",
        "--epochs",
        "40",
        "--patience",
        "40",
        "--hidden",
        "32",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--dropout",
        "0.2",
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = gmu(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("60 movies (train 36 / dev 12 / test 12)"), "{stdout}");
    assert!(stdout.contains("text 384 + visual 1280 features"), "{stdout}");
    assert!(stdout.contains("plots: encoded into") && stdout.contains("posters: encoded into"), "{stdout}");
    assert!(stdout.contains("2 posters gave no features") && stdout.contains("1 plots gave no features"), "{stdout}");
    // Issue 20, items 23 and 24: incomplete movies are kept and listed; the
    // genres are the archive's four, most frequent first.
    assert!(
        stdout.contains("2 movies kept with a view missing or no genre")
            && stdout.contains("0000150 (no poster)")
            && stdout.contains("0000153 (no plot)"),
        "{stdout}"
    );
    assert!(stdout.contains("4 genres") && stdout.contains("60 movies, 4 genres"), "{stdout}");
    let results = read_json(&out.join("results.json"));
    let micro = results[0]["test"]["f1"]["micro"].as_f64().unwrap();
    assert!(micro > 0.8, "planted genres: test F1 micro {micro}\n{stdout}");
    // the model directory records both encoders
    let config = read_json(&out.join("gmu").join("config.json"));
    assert_eq!(config["views"][0]["encoder"]["encoder"], "minilm");
    assert_eq!(config["views"][1]["encoder"]["encoder"], "effnet-lite0");
    // a second run reuses the cached features and gives the same scores
    let again = gmu(&[&args[..], &["--force"]].concat());
    assert!(again.status.success(), "{}", stderr(&again));
    let stdout2 = String::from_utf8_lossy(&again.stdout);
    assert!(stdout2.contains("plots: reused") && stdout2.contains("posters: reused"), "{stdout2}");
    assert_eq!(read_json(&out.join("results.json"))[0]["test"]["f1"], results[0]["test"]["f1"]);
    // predict from a raw plot and poster
    let model = out.join("gmu");
    let poster = root.join("dataset").join("0000100.jpeg"); // movie 0: Horror (and Drama)
    let p = gmu(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--text",
        "A haunted house, a ghost and a scream in the night.",
        "--image",
        poster.to_str().unwrap(),
    ]);
    assert!(p.status.success(), "{}", stderr(&p));
    let report = String::from_utf8_lossy(&p.stdout);
    assert!(report.lines().next().unwrap().contains("Horror"), "{report}");
    assert!(report.contains("text") && report.contains("visual") && report.contains("importance"), "{report}");
    // only a plot: the poster is a missing view
    let p = gmu(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--text",
        "They laugh at a silly joke and a hilarious prank.",
    ]);
    assert!(p.status.success(), "{}", stderr(&p));
    let report = String::from_utf8_lossy(&p.stdout);
    assert!(report.lines().next().unwrap().contains("Comedy"), "{report}");
    assert!(report.contains("missing"), "{report}");
    // many rows from CSVs: a text column and an image-path column; row 1 has no plot
    std::fs::write(dir.path().join("plots.csv"), "plot\n\"Love, a kiss and a wedding.\"\n\"\"\n").unwrap();
    let posters = dir.path().join("posters.csv");
    std::fs::write(
        &posters,
        format!(
            "path\n{}\n{}\n",
            root.join("dataset/0000102.jpeg").display(),
            root.join("dataset/0000104.jpeg").display()
        ),
    )
    .unwrap();
    let files = format!("{},{}", dir.path().join("plots.csv").display(), posters.display());
    let p = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &files]);
    assert!(p.status.success(), "{}", stderr(&p));
    let rows = String::from_utf8_lossy(&p.stdout);
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 3, "{rows}");
    assert!(
        lines[0].starts_with("row,predicted,p_Comedy,p_Horror,p_Romance,p_Drama,")
            && lines[0].contains("gate_text")
            && lines[0].contains("importance_visual"),
        "{rows}"
    );
    assert!(lines[1].split(',').nth(1).unwrap().contains("Romance"), "{rows}");
    assert!(lines[2].split(',').nth(1).unwrap().contains("Comedy"), "movie 4 (Comedy) from its poster alone: {rows}");
    assert!(stderr(&p).contains("row 1 (): empty text → view 'text' missing"), "{}", stderr(&p));
    // Issue 20, item 29: a bar with the rate and the time left; --id-column passes a column through.
    assert!(stderr(&p).contains("encoding 2 rows of view 'visual'") && stderr(&p).contains("rows/s"), "{}", stderr(&p));
    let with_ids = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &files, "--id-column", "path"]);
    assert!(with_ids.status.success(), "{}", stderr(&with_ids));
    let text = String::from_utf8_lossy(&with_ids.stdout).to_string();
    assert!(text.starts_with("row,id,predicted,") && text.lines().nth(1).unwrap().contains("0000102.jpeg"), "{text}");
    // Issue 20, item 26: the missing text view of row 1 has no gate, share or
    // importance (blank), and the visual view, the only one present, gets the whole gate.
    let header: Vec<&str> = lines[0].split(',').collect();
    let cell = |row: &str, name: &str| {
        row.split(',').nth(header.iter().position(|h| *h == name).unwrap()).unwrap().to_string()
    };
    for column in ["gate_text", "share_text", "importance_text"] {
        assert_eq!(cell(lines[2], column), "", "{column}: {rows}");
    }
    assert_eq!(cell(lines[2], "gate_visual"), "1.000000", "{rows}");
    // Issue 20, item 29: JSON gives `predicted` as a list; --top-k and --at-least-one decide multilabel rows.
    let p = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &files, "--json", "--top-k", "2"]);
    assert!(p.status.success(), "{}", stderr(&p));
    for line in String::from_utf8_lossy(&p.stdout).lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["predicted"].as_array().map(Vec::len), Some(2), "{row}");
        assert!(row["gate_text"].is_null() || row["gate_text"].is_number(), "{row}");
    }
    let p = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &files, "--json", "--at-least-one"]);
    for line in String::from_utf8_lossy(&p.stdout).lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(!row["predicted"].as_array().unwrap().is_empty(), "{row}");
    }
    // Issue 20, item 25: the test split of an archive model, and the
    // robustness sweep on a run whose rows lack a view, both work.
    let p = gmu(&["predict", "--model", model.to_str().unwrap(), "--split", "test"]);
    assert!(p.status.success(), "{}", stderr(&p));
    assert_eq!(String::from_utf8_lossy(&p.stdout).lines().count(), 13, "{}", String::from_utf8_lossy(&p.stdout));
    let r = gmu(&["robustness", "--run", out.to_str().unwrap(), "--levels", "0,1"]);
    assert!(r.status.success(), "{}", stderr(&r));
    // Issue 20, items 2 and 21: --out never names an input (a CSV, a poster it
    // lists, the model's config) and --labels on raw rows is refused, not ignored.
    let model_s = model.to_str().unwrap();
    let before = std::fs::read(root.join("dataset/0000104.jpeg")).unwrap();
    for (target, needle) in [
        (dir.path().join("plots.csv"), "is an input of this command"),
        (root.join("dataset/0000104.jpeg"), "is an input of this command"),
        (model.join("config.json"), "inside the model directory"),
    ] {
        let p = gmu(&["predict", "--model", model_s, "--files", &files, "--out", target.to_str().unwrap()]);
        assert_refused(&p, needle);
    }
    assert_eq!(std::fs::read(root.join("dataset/0000104.jpeg")).unwrap(), before);
    assert!(read_json(&model.join("config.json"))["views"].is_array());
    let p = gmu(&["predict", "--model", model_s, "--files", &files, "--labels", "/no/such/labels.csv"]);
    assert_refused(&p, "invalid --labels /no/such/labels.csv");
    // the LSTM text sub-network on WordPiece ids, trained end to end; the posters' cache is reused
    let lstm_out = dir.path().join("run-lstm");
    let lstm = gmu(&[
        &args[..args.len() - 2],
        &["--text-encoder", "lstm", "--max-tokens", "24", "--out", lstm_out.to_str().unwrap()],
    ]
    .concat());
    assert!(lstm.status.success(), "{}", stderr(&lstm));
    let stdout = String::from_utf8_lossy(&lstm.stdout);
    assert!(
        stdout.contains("plots: encoded into")
            && stdout.contains("text-wordpiece-24-")
            && stdout.contains("posters: reused"),
        "{stdout}"
    );
    assert!(
        stdout.contains("text 24 tokens of a 30522-token vocabulary (read by an LSTM) + visual 1280 features"),
        "{stdout}"
    );
    let config = read_json(&lstm_out.join("gmu").join("config.json"));
    assert_eq!(config["views"][0]["encoder"]["encoder"], "wordpiece");
    assert_eq!(
        config["members"][0]["spec"]["encoders"][0]["lstm"]["vocab"], 30522,
        "{}",
        config["members"][0]["spec"]["encoders"]
    );
    let p = gmu(&[
        "predict",
        "--model",
        lstm_out.join("gmu").to_str().unwrap(),
        "--text",
        "A ghost.",
        "--image",
        poster.to_str().unwrap(),
    ]);
    assert!(p.status.success(), "{}", stderr(&p));
    assert!(String::from_utf8_lossy(&p.stdout).starts_with("predicted"), "{}", String::from_utf8_lossy(&p.stdout));
    // a row with neither view: a plain refusal that says why each input gave nothing
    std::fs::write(&posters, "path\nnot-a-poster.jpg\nnot-there.jpg\n").unwrap();
    let p = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &files]);
    assert_refused(&p, "row 1: every view is missing");
    assert!(stderr(&p).contains("not-there.jpg") && stderr(&p).contains("empty text"), "{}", stderr(&p));
    // Issue 20, item 28: found before any encoding; --skip-empty-rows writes a blank row.
    assert!(stderr(&p).contains("found before encoding") && !stderr(&p).contains("encoding 2 rows"), "{}", stderr(&p));
    let p = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &files, "--skip-empty-rows"]);
    assert!(p.status.success(), "{}", stderr(&p));
    let rows = String::from_utf8_lossy(&p.stdout).to_string();
    let blank = rows.lines().nth(2).unwrap();
    assert!(blank.starts_with("1,,") && blank.split(',').skip(1).all(str::is_empty), "{rows}");
    // Every row blank: still one cell per column (no rows were seen to give the width).
    std::fs::write(dir.path().join("blank-plots.csv"), "plot\n\"\"\n").unwrap();
    std::fs::write(dir.path().join("blank-posters.csv"), "path\nnot-there.jpg\n").unwrap();
    let blank_files =
        format!("{},{}", dir.path().join("blank-plots.csv").display(), dir.path().join("blank-posters.csv").display());
    let p = gmu(&["predict", "--model", model.to_str().unwrap(), "--files", &blank_files, "--skip-empty-rows"]);
    assert!(p.status.success(), "{}", stderr(&p));
    let rows = String::from_utf8_lossy(&p.stdout).to_string();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 2, "{rows}");
    assert_eq!(lines[1].split(',').count(), lines[0].split(',').count(), "{rows}");
}

fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    gmu::io::npy::read_npy(path).unwrap()
}

#[test]
fn encode_writes_features_with_missing_rows_as_nan_and_a_sidecar() {
    use gmu::encoders::EncoderKind;
    if !encoders_present(&[EncoderKind::MiniLm, EncoderKind::Glove, EncoderKind::EffnetLite0]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoders/cmyk.jpg"), d.join("cmyk.jpg"))
        .unwrap();
    image::GrayImage::from_fn(50, 40, |x, y| image::Luma([(x * 5 + y) as u8]))
        .save_with_format(d.join("gray.jpg"), image::ImageFormat::Jpeg)
        .unwrap();
    image::RgbImage::from_fn(300, 200, |x, y| image::Rgb([x as u8, y as u8, 90]))
        .save_with_format(d.join("big.png"), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(d.join("notes.jpg"), "a text file with a .jpg name").unwrap();
    let csv = d.join("rows.csv");
    std::fs::write(&csv, "plot,path\n\"A young wizard, a school.\",cmyk.jpg\n,gray.jpg\n\"Zzxqv wqpt\",notes.jpg\n\"Two cops, one city\",absent.png\nLove,big.png\n").unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // MiniLM: the empty plot is a NaN row, listed in the sidecar
    let out = d.join("text.npy");
    let run = gmu(&["encode", "--text", &s(&csv), "--column", "plot", "--out", &s(&out)]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("5 rows × 384, 1 missing"));
    assert!(stderr(&run).contains("row 1 (): empty text → written as a missing row (NaN)"), "{}", stderr(&run));
    let (shape, values) = read_npy_f32(&out);
    assert_eq!(shape, vec![5, 384]);
    assert!(values[384..768].iter().all(|v| v.is_nan()) && values[..384].iter().all(|v| v.is_finite()));
    let norm: f32 = values[..384].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "MiniLM embeddings are unit vectors: {norm}");
    let sidecar = read_json(&d.join("text.npy.json"));
    assert_eq!(sidecar["encoder"]["encoder"], "minilm");
    assert_eq!(sidecar["encoder"]["max_tokens"], 256);
    assert_eq!(sidecar["missing"][0]["row"], 1);
    // GloVe: words out of vocabulary are counted; a plot of none is missing
    let glove = d.join("glove.npy");
    let run = gmu(&["encode", "--text", &s(&csv), "--column", "plot", "--encoder", "glove", "--out", &s(&glove)]);
    assert!(run.status.success(), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("5 rows × 50, 2 missing") && stdout.contains("out of vocabulary"), "{stdout}");
    assert!(
        stderr(&run).contains("row 2 (Zzxqv wqpt): none of its 2 words is in GloVe's vocabulary"),
        "{}",
        stderr(&run)
    );
    // EfficientNet: CMYK, grayscale and PNG decode; a text file and a missing file are missing rows
    let img = d.join("image.npy");
    let run = gmu(&["encode", "--images", &s(&csv), "--column", "path", "--out", &s(&img)]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("5 rows × 1280, 2 missing"),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let err = stderr(&run);
    assert!(err.contains("notes.jpg): not a decodable image") && err.contains("absent.png): cannot open"), "{err}");
    let (_, values) = read_npy_f32(&img);
    for (row, present) in [(0, true), (1, true), (2, false), (3, false), (4, true)] {
        assert_eq!(values[row * 1280..(row + 1) * 1280].iter().all(|v| v.is_finite()), present, "row {row}");
    }
    // refusals: an existing --out, an unknown column, the wrong encoder for the input, a missing CSV
    assert_refused(
        &gmu(&["encode", "--text", &s(&csv), "--column", "plot", "--out", &s(&out)]),
        "exists; pass --force",
    );
    assert_refused(
        &gmu(&["encode", "--text", &s(&csv), "--column", "title", "--out", &s(&d.join("t2.npy"))]),
        "no column 'title' (columns: plot, path)",
    );
    assert_refused(
        &gmu(&[
            "encode",
            "--images",
            &s(&csv),
            "--column",
            "path",
            "--encoder",
            "minilm",
            "--out",
            &s(&d.join("t3.npy")),
        ]),
        "--encoder minilm",
    );
    assert_refused(
        &gmu(&["encode", "--text", &s(&d.join("nope.csv")), "--column", "plot", "--out", &s(&d.join("t4.npy"))]),
        "nope.csv",
    );
    assert!(!d.join("t2.npy").exists() && !d.join("t3.npy").exists() && !d.join("t4.npy").exists());
    // Issue 20, item 6: an encode that fails (here: --out names a folder) leaves no
    // sidecar and no features behind; it fails before encoding.
    let folder = d.join("t6.npy");
    std::fs::create_dir_all(&folder).unwrap();
    let run = gmu(&["encode", "--text", &s(&csv), "--column", "plot", "--out", &s(&folder), "--force"]);
    assert_refused(&run, "is a folder");
    assert!(!d.join("t6.npy.json").exists() && folder.is_dir());
    // Issue 20, item 2: neither the features nor their sidecar may replace an input.
    let named = d.join("t5.npy.json");
    std::fs::copy(&csv, &named).unwrap();
    assert_refused(
        &gmu(&["encode", "--text", &s(&named), "--column", "plot", "--out", &s(&d.join("t5.npy"))]),
        "invalid --out (its sidecar)",
    );
    assert_eq!(std::fs::read(&named).unwrap(), std::fs::read(&csv).unwrap());
    assert_refused(
        &gmu(&["encode", "--images", &s(&csv), "--column", "path", "--out", &s(&d.join("big.png")), "--force"]),
        "expected a .npy",
    );
}

/// A picture model through the CLI: `gmu train --data twemoji` trains the
/// GMU with its CNN on the cnn engine (recorded in the model directory), the
/// same seed gives the same losses and test scores, `eval` scores the saved
/// model, and `--engine burn` trains the same model on burn.
#[test]
fn twemoji_trains_its_cnn_on_the_cnn_engine_and_scores_again_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let quick = ["--data", "twemoji", "--steps", "6", "--batch-size", "64", "--restarts", "1", "--seed", "2"];
    let train = |out: &str, extra: &[&str]| {
        let run = gmu(&[&["train", "--out", out][..], &quick, extra].concat());
        assert!(run.status.success(), "{}", stderr(&run));
        read_json(&dir.path().join(out).join("config.json"))
    };
    let config = train(&p("cnn"), &[]);
    assert_eq!(config["members"][0]["engine"], "cnn");
    let again = train(&p("again"), &[]);
    assert_eq!(config["results"], again["results"], "the same seed gives the same model");
    assert_eq!(config["members"][0]["step_losses"], again["members"][0]["step_losses"]);
    assert_eq!(config["members"][0]["step_losses"].as_array().unwrap().len(), 6);
    let eval = gmu(&["eval", "--model", &p("cnn"), "--data", "twemoji", "--json"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let scores: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    // Issue 25: `eval`'s accuracy by value (after 6 steps the model is weak, so "better than
    // chance" could not fail): recomputed from `predict`'s decisions and Twemoji's labels.
    let predicted = gmu(&["predict", "--model", &p("cnn"), "--data", "twemoji"]);
    assert!(predicted.status.success(), "{}", stderr(&predicted));
    let data = gmu::data::DataSource::Twemoji { text: None }
        .load(&burn::tensor::Device::default())
        .unwrap()
        .labelled("test")
        .unwrap();
    let names = data.targets.names().to_vec();
    let text = String::from_utf8_lossy(&predicted.stdout).to_string();
    let right = text
        .lines()
        .skip(1)
        .filter(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let r: usize = cells[0].parse().unwrap();
            let truth = data.targets.indicator_row(r).iter().position(|&x| x == 1).unwrap();
            cells[1] == names[truth]
        })
        .count();
    let accuracy = right as f64 / data.len() as f64;
    assert!((scores["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-12, "{scores} vs {accuracy}");
    // A model with a picture CNN inside has no ONNX form yet: refused by name, nothing written.
    assert_refused(&gmu(&["export", "--model", &p("cnn"), "--out", &p("cnn.onnx")]), "picture CNN");
    assert!(!dir.path().join("cnn.onnx").exists());
    let burn = train(&p("burn"), &["--engine", "burn"]);
    assert_eq!(burn["members"][0]["engine"], "burn");
}

/// Writes the raw-archive fixture of `n` movies (`GMU_ARCHIVE_N`, default
/// 120) into `GMU_ARCHIVE_OUT`, for the example in docs/real-data.md:
/// `GMU_ARCHIVE_OUT=mmimdb cargo test --release --test cli -- --ignored write_the_raw_archive_fixture`.
#[test]
#[ignore]
fn write_the_raw_archive_fixture() {
    let out = std::env::var("GMU_ARCHIVE_OUT").expect("GMU_ARCHIVE_OUT names the folder to write");
    let n = std::env::var("GMU_ARCHIVE_N").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    write_raw_archive(Path::new(&out), n);
}

/// Splits a README command line into words the way `sh` does for the quoting
/// the README uses (double quotes, no escapes), dropping a trailing comment.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => (quoted, any) = (!quoted, true),
            '#' if !quoted && word.is_empty() => break,
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => (word, any) = (word + &c.to_string(), true),
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// Issue 25, item 2: every `sh` block of the README, run line by line in one
/// fresh folder as a new user would, in the README's order (a later line uses
/// what an earlier one wrote). `gmu` and `cargo run --release --` are the binary
/// under test. The files the README takes as the user's own (`image.npy`,
/// `text.csv`, `labels.csv`, `multimodal_imdb.hdf5`, `mmimdb/`, `movies.csv`,
/// `poster.jpg`) are small ones written here, and the training commands get
/// `--epochs 2` appended: what is tested is that each command, as written, is
/// accepted and does its job, not the scores. Left out: `cargo test` (this is
/// it), the flag synopsis under "Commands" (not a runnable block), and the
/// step-by-step block (its own test above). The lines that need the
/// pretrained encoders run when they are fetched and are reported skipped
/// otherwise.
#[test]
fn every_command_block_of_the_readme_runs_as_written() {
    use gmu::encoders::EncoderKind;
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").unwrap();
        blocks.push(&body[..end]);
        rest = &body[end + 3..];
    }
    assert!(blocks.len() >= 5, "{} sh blocks", blocks.len());

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The user's own files.
    let (a, b, y) = write_views(d);
    let (shape, values) = {
        let text = std::fs::read_to_string(&a).unwrap();
        let rows: Vec<Vec<f32>> =
            text.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
        (vec![rows.len(), rows[0].len()], rows.concat())
    };
    std::fs::write(d.join("image.npy"), gmu::io::npy::npy_bytes(&shape, &values)).unwrap();
    std::fs::rename(&b, d.join("text.csv")).unwrap();
    std::fs::rename(&y, d.join("labels.csv")).unwrap();
    std::fs::copy(fixture("mmimdb_contiguous.h5"), d.join("multimodal_imdb.hdf5")).unwrap();
    write_raw_archive(&d.join("mmimdb"), 60);
    std::fs::write(d.join("movies.csv"), "title,plot\nA,\"A ghost haunts an old house.\"\nB,Two friends laugh.\n")
        .unwrap();
    std::fs::copy(d.join("mmimdb/dataset/0000100.jpeg"), d.join("poster.jpg")).unwrap();

    let encoders = std::cell::OnceCell::new();
    let (mut ran, mut skipped) = (0, 0);
    for block in blocks {
        if block.contains("gmu demo --out") || block.contains("G=target/release/gmu") {
            continue;
        }
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            let words = shell_words(line);
            let args: Vec<String> = match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["cargo", "test", ..] => continue,
                // The Python package's install: .ci/run runs it before python/tests, which run the
                // README's Python example.
                ["pip", "install", "./python"] => continue,
                ["cargo", "run", "--release", "--", args @ ..] | ["gmu", args @ ..] => {
                    args.iter().map(|s| s.to_string()).collect()
                }
                other => panic!("a README command this test does not know how to run: {other:?}"),
            };
            let raw = ["encoders", "encode"].contains(&args[0].as_str())
                || args.iter().any(|a| a == "--archive" || a == "--text" || a == "--image");
            if raw && !*encoders.get_or_init(|| encoders_present(&[EncoderKind::MiniLm, EncoderKind::EffnetLite0])) {
                skipped += 1;
                continue;
            }
            let mut args = args;
            if args[0] == "serve" {
                // A server runs until stopped: start it on a free port, wait until it listens, stop it.
                let mut child = Command::new(env!("CARGO_BIN_EXE_gmu"))
                    .args(&args)
                    .args(["--addr", "127.0.0.1:0"])
                    .current_dir(d)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
                let mut seen = String::new();
                while !seen.contains("listening on http://") {
                    use std::io::BufRead;
                    if err.read_line(&mut seen).unwrap() == 0 {
                        panic!("README line `{line}` did not start a server: {seen}");
                    }
                }
                child.kill().unwrap();
                child.wait().unwrap();
                ran += 1;
                continue;
            }
            if ["multiview", "mmimdb"].contains(&args[0].as_str()) {
                args.extend(["--epochs".into(), "2".into()]);
            }
            let out = Command::new(env!("CARGO_BIN_EXE_gmu")).args(&args).current_dir(d).output().unwrap();
            assert!(out.status.success(), "README line `{line}` failed: {}", stderr(&out));
            ran += 1;
        }
    }
    eprintln!("README lines run: {ran}, skipped without the encoders: {skipped}");
    assert!(ran + skipped >= 10, "{ran} run, {skipped} skipped");
    // What the lines wrote, where the README says.
    assert!(d.join("gmu-demo/gate_map.png").is_file());
    assert!(d.join("predictions.csv").is_file());
    assert!(d.join("runs/multiview-mfeat/fou+zer/robustness.json").is_file());
    assert!(d.join("runs/dropout/fou+zer/missing.png").is_file());
    assert!(d.join("runs/mmimdb/results.json").is_file());
    if skipped == 0 {
        let (shape, _) = read_npy_f32(&d.join("plot.npy"));
        assert_eq!(shape, [2, 384], "MiniLM's 384 features for each of movies.csv's two plots");
        assert!(d.join("run/gmu/config.json").is_file());
    }
}
