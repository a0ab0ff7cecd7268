//! The real data sets embedded in the binary (see `data/` for sources,
//! licences and credits), so a newcomer needs no download:
//! - [`mfeat`]: UCI Multiple Features, six views of 2000 handwritten digits;
//! - [`twemoji`]: 1906 emoji, a 32×32 picture and a name, 9 categories.

use std::io::Read;
use std::path::Path;

use burn::tensor::Device;

use super::multiview::{MultiviewData, Targets, View, classes_from_strings, read_view_csv};
use super::text::HashingEncoder;
use crate::error::{GmuError, Result};

/// The six mfeat views, in the order of the UCI description.
pub const MFEAT_VIEWS: [&str; 6] = ["fou", "fac", "kar", "pix", "zer", "mor"];

const MFEAT: [(&str, &[u8]); 6] = [
    ("fou", include_bytes!("../../data/mfeat/mfeat-fou.csv.gz")),
    ("fac", include_bytes!("../../data/mfeat/mfeat-fac.csv.gz")),
    ("kar", include_bytes!("../../data/mfeat/mfeat-kar.csv.gz")),
    ("pix", include_bytes!("../../data/mfeat/mfeat-pix.csv.gz")),
    ("zer", include_bytes!("../../data/mfeat/mfeat-zer.csv.gz")),
    ("mor", include_bytes!("../../data/mfeat/mfeat-mor.csv.gz")),
];
const TWEMOJI_IMAGES: &[u8] = include_bytes!("../../data/twemoji/images_32.u8.gz");
const TWEMOJI_META: &[u8] = include_bytes!("../../data/twemoji/meta.csv.gz");

/// Width of the hashed text features of Twemoji names.
pub const TWEMOJI_TEXT_DIM: usize = 512;

fn gunzip(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| GmuError::data(name, format!("embedded data is corrupt: {e}")))?;
    Ok(out)
}

/// The mfeat views named in `views` (any of [`MFEAT_VIEWS`], in the given
/// order), with the digit as the class.
pub fn mfeat(views: &[&str]) -> Result<MultiviewData> {
    let mut out = Vec::new();
    let mut digits = None;
    for &name in views {
        let (_, bytes) = MFEAT.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            GmuError::invalid("modalities", format!("mfeat has no view '{name}'; it has {}", MFEAT_VIEWS.join(", ")))
        })?;
        let file = format!("mfeat-{name}.csv");
        let (mut view, labels) = read_view_csv(Path::new(&file), &gunzip(&file, bytes)?, Some("last"))?;
        view.name = name.to_string();
        digits.get_or_insert(labels.expect("label column"));
        out.push(view);
    }
    let digits = digits.ok_or_else(|| GmuError::invalid("modalities", "no mfeat view selected"))?;
    let data = MultiviewData { views: out, targets: classes_from_strings(&digits) };
    data.validate(Path::new("mfeat"))?;
    Ok(data)
}

/// Twemoji: view `image` (3×32×32 pixels scaled to [0, 1], channel-major)
/// and view `text` (the name and short names through a [`HashingEncoder`]
/// of [`TWEMOJI_TEXT_DIM`] features); the category is the class.
pub fn twemoji() -> Result<MultiviewData> {
    twemoji_with(None)
}

/// Twemoji with its names through a pretrained text encoder (`None`: the
/// hashing encoder of [`twemoji`]), run on the device given with it. The
/// encoder must be fetched.
pub fn twemoji_with(text_encoder: Option<(&crate::encoders::EncoderSpec, &Device)>) -> Result<MultiviewData> {
    let pixels = gunzip("images_32.u8.gz", TWEMOJI_IMAGES)?;
    let meta = gunzip("meta.csv.gz", TWEMOJI_META)?;
    let mut reader = csv::Reader::from_reader(&meta[..]);
    let encoder = HashingEncoder::new(TWEMOJI_TEXT_DIM);
    let (mut names, mut categories) = (Vec::new(), Vec::new());
    for record in reader.records() {
        let r = record.map_err(|e| GmuError::data("meta.csv.gz", e.to_string()))?;
        names.push(format!("{} {}", &r[0], r[1].replace(['|', '_'], " ")));
        categories.push(r[2].to_string());
    }
    let n = categories.len();
    let dim = 3 * 32 * 32;
    if pixels.len() != n * dim {
        return Err(GmuError::data("images_32.u8.gz", format!("{} bytes for {n} images of {dim}", pixels.len())));
    }
    let image = View {
        name: "image".into(),
        dim,
        values: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        image: Some([3, 32, 32]),
        prescaled: false,
        encoder: None,
        tokens: None,
    };
    let text = match text_encoder {
        None => View {
            name: "text".into(),
            dim: TWEMOJI_TEXT_DIM,
            values: names.iter().flat_map(|t| encoder.encode(t)).collect(),
            image: None,
            prescaled: true,
            encoder: None,
            tokens: None,
        },
        Some((spec, encode_on)) => {
            let model = crate::encoders::Encoder::load(spec, encode_on)?;
            let inputs: Vec<crate::encoders::RawInput> =
                names.iter().map(|t| crate::encoders::RawInput::Text(t)).collect();
            // a name no word of which GloVe knows is a missing text view (NaN row)
            let (values, _) = crate::encoders::encode::encode_all(&model, &inputs, crate::encoders::encode::BATCH)?;
            View {
                name: "text".into(),
                dim: spec.dim,
                values,
                image: None,
                prescaled: false,
                encoder: Some(spec.clone()),
                tokens: None,
            }
        }
    };
    let Targets::Classes { y, names } = classes_from_strings(&categories) else { unreachable!() };
    let data = MultiviewData { views: vec![image, text], targets: Targets::Classes { y, names } };
    data.validate(Path::new("twemoji"))?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfeat_has_2000_digits_in_six_views() {
        let d = mfeat(&MFEAT_VIEWS).unwrap();
        let dims: Vec<usize> = d.views.iter().map(|v| v.dim).collect();
        assert_eq!(dims, vec![76, 216, 64, 240, 47, 6]);
        assert_eq!(d.len(), 2000);
        let Targets::Classes { y, names } = &d.targets else { panic!() };
        assert_eq!(names.len(), 10);
        assert!((0..10).all(|c| y.iter().filter(|&&k| k == c).count() == 200));
        // first row of mfeat-mor.csv: 1,0,0,133.15,1.3117,1620.2 (digit 0)
        assert_eq!(d.views[5].row(0), &[1.0, 0.0, 0.0, 133.15, 1.3117, 1620.2]);
        assert!(mfeat(&["fou", "nope"]).unwrap_err().to_string().contains("no view 'nope'"));
    }

    #[test]
    fn twemoji_has_1906_pictures_and_names_in_9_categories() {
        let d = twemoji().unwrap();
        assert_eq!(d.len(), 1906);
        assert_eq!(d.targets.width(), 9);
        assert_eq!(d.views[0].image, Some([3, 32, 32]));
        assert!(d.views[0].values.iter().all(|&p| (0.0..=1.0).contains(&p)));
        // every name hashes to at least one feature
        assert!((0..d.len()).all(|i| d.views[1].row(i).iter().any(|&x| x != 0.0)));
    }
}
