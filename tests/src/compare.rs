//! Comparing computed numbers with expected ones.
//!
//! A NaN difference is never "within" a tolerance: it fails every check
//! here (and [`max_abs_diff`] returns it).

/// The index and size of the largest absolute difference (the first NaN
/// when there is one); `None` for empty lists. Panics when the lengths
/// differ.
fn largest_difference(key: &str, got: &[f32], want: &[f32]) -> Option<(usize, f32)> {
    assert_eq!(
        got.len(),
        want.len(),
        "{key}: lengths differ (got {}, want {})",
        got.len(),
        want.len()
    );
    let mut largest: Option<(usize, f32)> = None;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let d = (a - b).abs();
        if d.is_nan() {
            return Some((i, d));
        }
        if largest.is_none_or(|(_, m)| d > m) {
            largest = Some((i, d));
        }
    }
    largest
}

/// Largest absolute difference between two float lists of equal length
/// (NaN when a difference is NaN).
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    largest_difference("max_abs_diff", got, want).map_or(0.0, |(_, d)| d)
}

/// Asserts `got` and `want` have the same length and differ by at most
/// `tol` everywhere; the panic names `key`, the largest |Δ| and where it
/// is. Returns the largest difference (for reports).
pub fn assert_close(key: &str, got: &[f32], want: &[f32], tol: f32) -> f32 {
    let Some((i, d)) = largest_difference(key, got, want) else {
        return 0.0;
    };
    assert!(
        d <= tol,
        "{key}: max abs diff {d:e} at index {i} (got {}, want {}), tolerance {tol:e}",
        got[i],
        want[i]
    );
    d
}

/// Asserts row by row that `got` and `want` (equally many rows) differ by
/// at most `tol`.
pub fn assert_rows_close(key: &str, got: &[Vec<f32>], want: &[Vec<f32>], tol: f32) {
    assert_eq!(got.len(), want.len(), "{key}: row counts differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_close(&format!("{key} row {i}"), g, w, tol);
    }
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Asserts row by row that `got` and `want` (equally many rows) have a
/// cosine similarity of at least `min`.
pub fn assert_cosines(key: &str, got: &[Vec<f32>], want: &[Vec<f32>], min: f64) {
    assert_eq!(got.len(), want.len(), "{key}: row counts differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let c = cosine(g, w);
        assert!(c >= min, "{key} row {i}: cosine {c} (at least {min})");
    }
}
