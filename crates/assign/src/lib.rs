//! Minimum-cost assignment (Hungarian / Kuhn–Munkres with potentials, O(n²·m)) for rectangular
//! `f64` cost matrices, and gated matching with a cost for leaving either side unmatched (the
//! form trackers use). Shared by the fusion GNN tracker and the video tracker; builds for
//! wasm32-wasip2.
#![forbid(unsafe_code)]

use thiserror::Error;

/// Bad cost matrices.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AssignError {
    /// The cost slice is not `rows × cols` long.
    #[error("cost matrix has {len} entries, expected {rows}×{cols}")]
    Shape {
        /// Entries given.
        len: usize,
        /// Rows declared.
        rows: usize,
        /// Columns declared.
        cols: usize,
    },
    /// A NaN or infinite cost.
    #[error("assignment cost is NaN or infinite")]
    NonFinite,
    /// The solver found no augmenting path (cannot happen for finite costs; kept typed).
    #[error("assignment did not converge")]
    NoConvergence,
}

/// Solves min Σ cost\[r\]\[c\] over one-to-one assignments of the smaller side.
/// Returns, for each row, the assigned column (`None` if there are more rows than columns and
/// this row was left out). `cost` is row-major `rows × cols`.
///
/// # Errors
/// [`AssignError::Shape`] for a length that is not `rows × cols`, [`AssignError::NonFinite`]
/// for a NaN or infinite cost.
pub fn hungarian(cost: &[f64], rows: usize, cols: usize) -> Result<Vec<Option<usize>>, AssignError> {
    if Some(cost.len()) != rows.checked_mul(cols) {
        return Err(AssignError::Shape { len: cost.len(), rows, cols });
    }
    if cost.iter().any(|v| !v.is_finite()) {
        return Err(AssignError::NonFinite);
    }
    if rows == 0 || cols == 0 {
        return Ok(vec![None; rows]);
    }
    if rows > cols {
        // solve the transpose, then invert the mapping
        let t: Vec<f64> = (0..cols * rows).map(|i| cost.get((i % rows) * cols + i / rows).copied().unwrap_or(0.0)).collect();
        let col_to_row = hungarian(&t, cols, rows)?;
        let mut out = vec![None; rows];
        for (c, r) in col_to_row.iter().enumerate() {
            if let Some(r) = r
                && let Some(slot) = out.get_mut(*r)
            {
                *slot = Some(c);
            }
        }
        return Ok(out);
    }
    let (n, m) = (rows, cols);
    let at = |i: usize, j: usize| cost.get((i - 1) * m + (j - 1)).copied().unwrap_or(0.0);
    // potentials u (rows), v (cols); p[j] = row matched to column j (1-based, 0 = none)
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![f64::INFINITY; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.fill(f64::INFINITY);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = at(i0, j) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            if j1 == 0 {
                return Err(AssignError::NoConvergence);
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n];
    for (j, &row) in p.iter().enumerate().skip(1) {
        if row > 0
            && let Some(slot) = out.get_mut(row - 1)
        {
            *slot = Some(j - 1);
        }
    }
    Ok(out)
}

/// Gated matching as trackers use it (ByteTrack's `linear_assignment` with a cost limit): a
/// pair may be matched only if its cost is at most `max_cost`, and leaving a row or a column
/// unmatched costs `max_cost / 2` each, so a match is made only where it beats leaving both
/// sides free, and the total over matches and unmatched sides is minimal. Returns the matched
/// (row, col) pairs in row order.
///
/// # Errors
/// As [`hungarian`]; a NaN, infinite or negative `max_cost` is [`AssignError::NonFinite`].
pub fn match_gated(
    cost: &[f64],
    rows: usize,
    cols: usize,
    max_cost: f64,
) -> Result<Vec<(usize, usize)>, AssignError> {
    if Some(cost.len()) != rows.checked_mul(cols) {
        return Err(AssignError::Shape { len: cost.len(), rows, cols });
    }
    if !max_cost.is_finite() || max_cost < 0.0 || cost.iter().any(|v| !v.is_finite()) {
        return Err(AssignError::NonFinite);
    }
    // Only rows and columns with at least one allowed pair take part: the others stay
    // unmatched in every optimum, and leaving them out keeps the square problem small.
    let live_rows: Vec<usize> =
        (0..rows).filter(|&r| cost[r * cols..][..cols].iter().any(|&c| c <= max_cost)).collect();
    let live_cols: Vec<usize> =
        (0..cols).filter(|&c| live_rows.iter().any(|&r| cost[r * cols + c] <= max_cost)).collect();
    if live_rows.is_empty() || live_cols.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(pairs) = row_minima_matching(cost, cols, max_cost, &live_rows) {
        return Ok(pairs);
    }
    let cols_all = cols;
    let (rows, cols) = (live_rows.len(), live_cols.len());
    let cost: Vec<f64> =
        live_rows.iter().flat_map(|&r| live_cols.iter().map(move |&c| (r, c))).map(|(r, c)| cost[r * cols_all + c]).collect();
    gated_by_hungarian(&cost, rows, cols, max_cost, &live_rows, &live_cols)
}

/// The matching of [`match_gated`] when it can be read off the rows: every live row has one
/// strictly smallest cost, below `max_cost`, and no two rows share that column.
///
/// With `half = max_cost / 2` per unmatched side, a matching's total is
/// `half · (rows + cols) + Σ_matched (cost − max_cost)`, and a row's term (0 when it is left
/// unmatched) is at least `min(0, smallest cost − max_cost)`, which is the smallest cost minus
/// `max_cost` when that is below `max_cost`. Matching each row to its own minimum reaches
/// that bound, and with strict minima below `max_cost` no other matching does, so this is the
/// one optimum and the one the full solver returns. Trackers meet this case on most frames
/// (each track nearest its own detection), and it costs one pass over the matrix instead of
/// the O(n³) solve of a `(rows + cols)²` problem.
fn row_minima_matching(cost: &[f64], cols: usize, max_cost: f64, live_rows: &[usize]) -> Option<Vec<(usize, usize)>> {
    let mut taken = vec![false; cols];
    let mut pairs = Vec::with_capacity(live_rows.len());
    for &r in live_rows {
        let row = cost.get(r * cols..(r + 1) * cols)?;
        let (mut best, mut best_c, mut tie) = (f64::INFINITY, 0, false);
        for (c, &v) in row.iter().enumerate() {
            if v < best {
                (best, best_c, tie) = (v, c, false);
            } else if v == best {
                tie = true;
            }
        }
        let slot = taken.get_mut(best_c)?;
        if tie || best >= max_cost || *slot {
            return None;
        }
        *slot = true;
        pairs.push((r, best_c));
    }
    Some(pairs)
}

/// [`match_gated`] on the live rows and columns, solved as one square assignment problem.
fn gated_by_hungarian(
    cost: &[f64],
    rows: usize,
    cols: usize,
    max_cost: f64,
    live_rows: &[usize],
    live_cols: &[usize],
) -> Result<Vec<(usize, usize)>, AssignError> {
    // Square (rows + cols) problem: real pairs top-left, "row r unmatched" top-right diagonal,
    // "column c unmatched" bottom-left diagonal, zeros bottom-right. `big` exceeds the cost of
    // leaving everything unmatched, so no optimum uses a forbidden cell.
    let n = rows + cols;
    let half = max_cost / 2.0;
    let big = (max_cost.max(1.0) + 1.0) * (n as f64 + 1.0) * 4.0;
    let mut ext = vec![big; n * n];
    for r in 0..rows {
        for c in 0..cols {
            let v = cost[r * cols + c];
            if v <= max_cost {
                ext[r * n + c] = v;
            }
        }
        ext[r * n + cols + r] = half;
    }
    for c in 0..cols {
        ext[(rows + c) * n + c] = half;
        for r in 0..rows {
            ext[(rows + c) * n + cols + r] = 0.0;
        }
    }
    let assigned = hungarian(&ext, n, n)?;
    Ok(assigned
        .iter()
        .take(rows)
        .enumerate()
        .filter_map(|(r, c)| c.filter(|&c| c < cols && cost[r * cols + c] <= max_cost).map(|c| (r, c)))
        .filter_map(|(r, c)| Some((*live_rows.get(r)?, *live_cols.get(c)?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(cost: &[f64], cols: usize, a: &[Option<usize>]) -> f64 {
        a.iter().enumerate().filter_map(|(r, c)| c.map(|c| cost[r * cols + c])).sum()
    }

    #[test]
    fn square_known_optimum() {
        let c = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
        let a = hungarian(&c, 3, 3).unwrap();
        assert_eq!(a, vec![Some(1), Some(0), Some(2)]);
        assert_eq!(total(&c, 3, &a), 5.0);
    }

    #[test]
    fn rectangular_both_ways_and_brute_force() {
        let c = [10.0, 19.0, 8.0, 15.0, 10.0, 18.0, 7.0, 17.0];
        // 2 × 4
        let a = hungarian(&c, 2, 4).unwrap();
        assert_eq!(total(&c, 4, &a), 17.0);
        // 4 × 2 (transpose)
        let t = [10.0, 10.0, 19.0, 18.0, 8.0, 7.0, 15.0, 17.0];
        let b = hungarian(&t, 4, 2).unwrap();
        assert_eq!(b.iter().filter(|x| x.is_some()).count(), 2);
        assert_eq!(total(&t, 2, &b), 17.0);
        // brute force on pseudo-random 4×4
        let mut s = 12345u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 100) as f64
        };
        for _ in 0..50 {
            let c: Vec<f64> = (0..16).map(|_| next()).collect();
            let a = hungarian(&c, 4, 4).unwrap();
            let mut best = f64::INFINITY;
            for p in [[0, 1, 2, 3], [0, 1, 3, 2], [0, 2, 1, 3], [0, 2, 3, 1], [0, 3, 1, 2], [0, 3, 2, 1], [1, 0, 2, 3], [1, 0, 3, 2], [1, 2, 0, 3], [1, 2, 3, 0], [1, 3, 0, 2], [1, 3, 2, 0], [2, 0, 1, 3], [2, 0, 3, 1], [2, 1, 0, 3], [2, 1, 3, 0], [2, 3, 0, 1], [2, 3, 1, 0], [3, 0, 1, 2], [3, 0, 2, 1], [3, 1, 0, 2], [3, 1, 2, 0], [3, 2, 0, 1], [3, 2, 1, 0]] {
                best = best.min((0..4).map(|r| c[r * 4 + p[r]]).sum());
            }
            assert_eq!(total(&c, 4, &a), best);
        }
    }

    /// Exhaustive minimum of the gated objective over all partial matchings.
    fn brute_gated(cost: &[f64], rows: usize, cols: usize, max_cost: f64) -> f64 {
        fn go(r: usize, used: &mut Vec<bool>, cost: &[f64], rows: usize, cols: usize, max_cost: f64) -> f64 {
            if r == rows {
                return used.iter().filter(|u| !**u).count() as f64 * max_cost / 2.0;
            }
            let mut best = max_cost / 2.0 + go(r + 1, used, cost, rows, cols, max_cost);
            for c in 0..cols {
                let v = cost[r * cols + c];
                if !used[c] && v <= max_cost {
                    used[c] = true;
                    best = best.min(v + go(r + 1, used, cost, rows, cols, max_cost));
                    used[c] = false;
                }
            }
            best
        }
        go(0, &mut vec![false; cols], cost, rows, cols, max_cost)
    }

    fn gated_total(cost: &[f64], rows: usize, cols: usize, max_cost: f64, pairs: &[(usize, usize)]) -> f64 {
        let matched: f64 = pairs.iter().map(|&(r, c)| cost[r * cols + c]).sum();
        matched + (rows + cols - 2 * pairs.len()) as f64 * max_cost / 2.0
    }

    #[test]
    fn gated_prefers_one_sure_match_to_two_doubtful_ones() {
        // t0-d0 is sure (0.1); t0-d1 and t1-d0 are doubtful (0.45 each), t1-d1 impossible.
        let cost = [0.1, 0.45, 0.45, 0.9];
        assert_eq!(match_gated(&cost, 2, 2, 0.5).unwrap(), vec![(0, 0)]);
        // Nothing under the gate: nothing matched.
        assert!(match_gated(&[0.7, 0.8], 1, 2, 0.5).unwrap().is_empty());
        // Empty sides.
        assert!(match_gated(&[], 0, 3, 0.5).unwrap().is_empty());
    }

    /// Costs in [0, 1) in steps of 0.001 from a 64-bit LCG seeded with `seed`.
    fn costs(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 1000) as f64 / 1000.0
        }
    }

    #[test]
    fn gated_matches_brute_force_on_random_matrices() {
        let mut next = costs(99);
        for rows in 0..=4 {
            for cols in 0..=4 {
                for _ in 0..20 {
                    let cost: Vec<f64> = (0..rows * cols).map(|_| next()).collect();
                    let pairs = match_gated(&cost, rows, cols, 0.6).unwrap();
                    let mut seen_c = vec![false; cols];
                    for &(_, c) in &pairs {
                        assert!(!seen_c[c], "column used twice");
                        seen_c[c] = true;
                    }
                    let got = gated_total(&cost, rows, cols, 0.6, &pairs);
                    let best = brute_gated(&cost, rows, cols, 0.6);
                    assert!((got - best).abs() < 1e-9, "{rows}x{cols}: {got} vs {best} for {cost:?}");
                }
            }
        }
    }

    #[test]
    fn the_row_minima_shortcut_agrees_with_the_full_solver() {
        let mut next = costs(7);
        let (mut shortcut, mut full) = (0, 0);
        for rows in 1..=6 {
            for cols in 1..=6 {
                for trial in 0..200 {
                    // a tracker-like matrix: each row near one column, or plain random
                    let cost: Vec<f64> = (0..rows * cols)
                        .map(|i| if trial % 2 == 0 && i / cols == (i % cols + trial) % rows.max(cols) { next() * 0.1 } else { next() })
                        .collect();
                    let live: Vec<usize> = (0..rows).filter(|&r| cost[r * cols..][..cols].iter().any(|&c| c <= 0.6)).collect();
                    let all: Vec<usize> = (0..cols).collect();
                    let by_solver = gated_by_hungarian(&cost, rows, cols, 0.6, &(0..rows).collect::<Vec<_>>(), &all).unwrap();
                    match row_minima_matching(&cost, cols, 0.6, &live) {
                        Some(pairs) => {
                            shortcut += 1;
                            assert_eq!(pairs, by_solver, "{rows}x{cols} {cost:?}");
                        }
                        None => full += 1,
                    }
                    assert_eq!(match_gated(&cost, rows, cols, 0.6).unwrap(), by_solver, "{rows}x{cols} {cost:?}");
                }
            }
        }
        // both paths were exercised
        assert!(shortcut > 1000 && full > 1000, "{shortcut} by the shortcut, {full} by the solver");
    }

    #[test]
    fn bad_input() {
        assert_eq!(match_gated(&[0.1, f64::NAN], 1, 2, 0.5), Err(AssignError::NonFinite));
        assert_eq!(match_gated(&[0.1], 1, 1, f64::NAN), Err(AssignError::NonFinite));
        assert_eq!(match_gated(&[0.1], 1, 1, -1.0), Err(AssignError::NonFinite));
        assert!(matches!(match_gated(&[0.1], 2, 2, 0.5), Err(AssignError::Shape { .. })));
        assert!(hungarian(&[1.0, f64::NAN], 1, 2).is_err());
        assert!(hungarian(&[1.0], 2, 2).is_err());
        assert_eq!(hungarian(&[], 0, 3).unwrap(), Vec::<Option<usize>>::new());
        assert_eq!(hungarian(&[], 2, 0).unwrap(), vec![None, None]);
    }
}
