//! The training rows as the loops read them: each view gathered and scaled
//! into a batch (a missing row zero, the training mean), partly missing rows
//! imputed, and each view's scaler fitted on the training rows.

use crate::data::{MultiviewData, Scaler, Scaling, View};

/// Gathers `rows` of view `v`, scaled; a missing row (all NaN) becomes zeros,
/// its training mean, as the missing-view rule of concat and linear sum says.
pub(super) fn gather(data: &MultiviewData, v: usize, rows: &[usize], scaler: &Scaler) -> Vec<f32> {
    let mut out = Vec::new();
    gather_into(data, v, rows, scaler, &mut out);
    out
}

/// [`gather`] into `out` (resized to `[rows, d]`): one pass over each row, and
/// a buffer the training loop reuses from batch to batch, so no step pays for
/// fresh pages (a batch of MM-IMDb's visual view is 2.25 MB).
pub(super) fn gather_into(data: &MultiviewData, v: usize, rows: &[usize], scaler: &Scaler, out: &mut Vec<f32>) {
    let view = &data.views[v];
    out.resize(rows.len() * view.dim, 0.0);
    for (&r, o) in rows.iter().zip(out.chunks_exact_mut(view.dim.max(1))) {
        scaler.apply_row_into(view.row(r), o);
    }
}

/// Which rows of `view` are missing (every cell NaN).
pub(super) fn missing_rows(view: &View) -> Vec<bool> {
    (0..view.len()).map(|r| view.row(r).iter().all(|x| x.is_nan())).collect()
}

/// `data` with every partly missing row of the views `modalities` filled with
/// the view's column means over the observed training cells.
pub(super) fn impute_partial_rows(data: &MultiviewData, modalities: &[usize], train: &[usize]) -> MultiviewData {
    let mut out = data.clone();
    for &v in modalities {
        let view = &data.views[v];
        // The cells as they are, NaN included: `with_impute_means` skips the missing ones
        // (`gather` would have read them as 0 and pulled every mean toward it).
        let raw: Vec<f32> = train.iter().flat_map(|&r| view.row(r).iter().copied()).collect();
        let means = Scaler::identity(view.dim).with_impute_means(&raw, view.dim);
        means.impute_partial_rows(&mut out.views[v].values).expect("means were computed");
    }
    out
}

/// Fits each view's scaler on the training rows where it is present:
/// feature views as `scaling` says; images (already in [0, 1]) are centred
/// on 0.5 and doubled so every pixel keeps its place in the picture's range;
/// prescaled views are left as they are (recording the spread that Gaussian
/// corruption's σ multiplies, [`Scaler::with_view_noise_scale`]) and token ids too.
pub(super) fn fit_scalers(
    data: &MultiviewData,
    modalities: &[usize],
    train: &[usize],
    scaling: Scaling,
) -> Vec<Scaler> {
    modalities
        .iter()
        .map(|&v| {
            let view = &data.views[v];
            if view.token_vocab().is_some() {
                // token ids: never scaled, never imputed
                return Scaler::identity(view.dim);
            }
            let present: Vec<usize> =
                train.iter().copied().filter(|&r| !view.row(r).iter().all(|x| x.is_nan())).collect();
            let raw = gather(data, v, &present, &Scaler::identity(view.dim));
            let scaler = if view.image.is_some() {
                Scaler { mean: vec![0.5; view.dim], scale: vec![0.5; view.dim], impute: None, noise_scale: None }
            } else if view.prescaled {
                Scaler::identity(view.dim).with_view_noise_scale(&raw, view.dim)
            } else {
                Scaler::fit(&raw, view.dim, scaling)
            };
            scaler.with_impute_means(&raw, view.dim)
        })
        .collect()
}
