//! Helpers shared by the integration tests (`mod common;` in each): the raw
//! MM-IMDb archive fixture and the check that the real encoders are fetched.
#![allow(dead_code)]

use std::path::Path;

/// Genres planted in the raw archive fixture: words in the plot, colour on the poster.
pub const PLANTED: [(&str, &[&str], [u8; 3]); 3] = [
    ("Horror", &["ghost", "haunted", "scream", "blood", "terror", "corpse"], [60, 0, 0]),
    ("Comedy", &["funny", "hilarious", "joke", "laugh", "silly", "prank"], [250, 220, 40]),
    ("Romance", &["love", "kiss", "heart", "passion", "wedding", "couple"], [240, 120, 190]),
];

/// A raw MM-IMDb archive in the published layout (`split.json`,
/// `dataset/<id>.json` with IMDb's field names, `dataset/<id>.jpeg` real
/// JPEGs written here) of `n` movies: movie i has genre i % 3, planted in its
/// plot's words and its poster's colour; every 4th is also a Drama (plot only).
/// Movie 5's poster is not a JPEG and movie 50 (a test movie) has none
/// (missing visual views); movie 53's plot is empty (a missing text view); the others have an empty
/// plot list entry beside a real one.
pub fn write_raw_archive(root: &Path, n: usize) {
    let data = root.join("dataset");
    std::fs::create_dir_all(&data).unwrap();
    let filler = ["the", "a", "town", "family", "night", "finds", "old", "house", "friends", "city"];
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{:07}", 100 + i);
        let (genre, words, colour) = PLANTED[i % 3];
        let mut genres = vec![genre];
        let mut plot: Vec<&str> = (0..12)
            .map(|k| if k % 3 == 0 { words[(i + k) % words.len()] } else { filler[(i * 7 + k) % filler.len()] })
            .collect();
        if i % 4 == 0 {
            genres.push("Drama");
            plot.extend(["tragic", "grief", "loss"]);
        }
        let json = serde_json::json!({
            "title": format!("Movie {i}"), "year": 1990 + i % 30, "genres": genres, "kind": "movie",
            "plot": if i == 53 { vec![String::new()] } else { vec![plot.join(" ") + ".", String::new()] },
            "imdb_id": id, "director": ["Someone"],
        });
        std::fs::write(data.join(format!("{id}.json")), json.to_string()).unwrap();
        let poster = data.join(format!("{id}.jpeg"));
        if i == 50 {
            // no poster at all: kept with the visual view missing
        } else if i == 5 {
            std::fs::write(&poster, b"this is not a JPEG").unwrap();
        } else {
            let img = image::RgbImage::from_fn(64, 96, |x, y| {
                let noise = ((x * 31 + y * 17 + i as u32 * 13) % 40) as i32 - 20;
                image::Rgb(colour.map(|c| (c as i32 + noise).clamp(0, 255) as u8))
            });
            img.save_with_format(&poster, image::ImageFormat::Jpeg).unwrap();
        }
        ids.push(id);
    }
    let (train, rest) = ids.split_at(n * 6 / 10);
    let (dev, test) = rest.split_at(rest.len() / 2);
    let split = serde_json::json!({"train": train, "dev": dev, "test": test});
    std::fs::write(root.join("split.json"), split.to_string()).unwrap();
}

/// Whether the real encoders are fetched (CI fetches them and sets
/// GMU_REQUIRE_ENCODERS=1, which turns their absence into a failure).
pub fn encoders_present(which: &[gmu::encoders::EncoderKind]) -> bool {
    for &kind in which {
        if let Err(e) = gmu::encoders::locate(kind) {
            if std::env::var("GMU_REQUIRE_ENCODERS").is_ok_and(|v| v == "1") {
                panic!("GMU_REQUIRE_ENCODERS=1 but {e}");
            }
            // Past the harness's capture, so a skip shows even when the test passes (issue 25).
            use std::io::Write;
            let line = format!("SKIPPED a real-encoder test: {e}\n");
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            // Counted with the library's skips in `$GMU_SKIPPED` (see src/encoders/mod.rs, `skipped`).
            if let Ok(path) = std::env::var("GMU_SKIPPED")
                && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path)
            {
                let _ = file.write_all(line.as_bytes());
            }
            return false;
        }
    }
    true
}
