//! Columnar, compressed encoding of a batch of samples (the payload of a
//! telemetry block).
//!
//! Samples are grouped per point (a "run"), ordered by time inside a run.
//! Timestamps are stored as delta-of-delta varints. Values are stored either
//! as scaled decimal integers (delta varints) when every value of the run is
//! exactly `n / 10^k` — the usual case for scaled field registers — or else as
//! the XOR with the previous value, leading zero bytes elided. Qualities are
//! run-length encoded. The whole is compressed with zstd.
//!
//! Encoding is lossless to the bit (NaN payloads and -0.0 included). Order of
//! samples is preserved per point, not across points. Decoding never panics
//! and never allocates more than [`MAX_RAW_BYTES`] / [`MAX_SAMPLES`] allow.

use crate::sample::{PointId, Quality, Sample};

/// Upper bound on samples in one block, enforced by encoder and decoder.
pub const MAX_SAMPLES: usize = 1_000_000;
/// Upper bound on the uncompressed columnar payload.
pub const MAX_RAW_BYTES: usize = 32 * 1024 * 1024;
const FORMAT: u8 = 1;
const ZSTD_LEVEL: i32 = 3;
const MAX_DECIMAL_EXP: u32 = 9;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockCodecError {
    #[error("block holds {0} samples, more than the limit of {MAX_SAMPLES}")]
    TooManySamples(usize),
    #[error("compressed payload is corrupt or larger than {MAX_RAW_BYTES} bytes")]
    Decompress,
    #[error("unknown block format {0}")]
    UnknownFormat(u8),
    #[error("block payload is truncated")]
    Truncated,
    #[error("varint is too long")]
    VarintOverflow,
    #[error("invalid value mode {0}")]
    BadValueMode(u8),
    #[error("invalid quality code {0}")]
    BadQuality(u8),
    #[error("run lengths do not add up to the sample count")]
    CountMismatch,
    #[error("trailing bytes after the last run")]
    TrailingBytes,
    #[error("point id overflows u32")]
    PointIdOverflow,
}

/// Encodes samples into a compressed columnar payload.
pub fn encode_samples(samples: &[Sample]) -> Result<Vec<u8>, BlockCodecError> {
    if samples.len() > MAX_SAMPLES {
        return Err(BlockCodecError::TooManySamples(samples.len()));
    }
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    // Stable: keeps arrival order for equal (point, ts).
    sorted.sort_by_key(|s| (s.point, s.ts_ms));

    let base_ts = sorted.iter().map(|s| s.ts_ms).min().unwrap_or(0);
    let mut out = Vec::with_capacity(samples.len() * 3 + 16);
    out.push(FORMAT);
    put_varint(&mut out, zigzag(base_ts));
    put_varint(&mut out, sorted.len() as u64);

    let runs: Vec<&[&Sample]> = sorted.chunk_by(|a, b| a.point == b.point).collect();
    put_varint(&mut out, runs.len() as u64);
    let mut prev_point = 0u32;
    for run in runs {
        let point = run[0].point.0;
        put_varint(&mut out, u64::from(point.wrapping_sub(prev_point)));
        prev_point = point;
        put_varint(&mut out, run.len() as u64);
        encode_timestamps(&mut out, run, base_ts);
        encode_values(&mut out, run);
        encode_qualities(&mut out, run);
    }
    zstd::bulk::compress(&out, ZSTD_LEVEL).map_err(|_| BlockCodecError::Decompress)
}

/// Decodes a payload produced by [`encode_samples`].
pub fn decode_samples(payload: &[u8]) -> Result<Vec<Sample>, BlockCodecError> {
    let raw =
        zstd::bulk::decompress(payload, MAX_RAW_BYTES).map_err(|_| BlockCodecError::Decompress)?;
    let mut r = Reader { buf: &raw, pos: 0 };
    let format = r.byte()?;
    if format != FORMAT {
        return Err(BlockCodecError::UnknownFormat(format));
    }
    let base_ts = unzigzag(r.varint()?);
    let total = usize::try_from(r.varint()?).map_err(|_| BlockCodecError::CountMismatch)?;
    if total > MAX_SAMPLES {
        return Err(BlockCodecError::TooManySamples(total));
    }
    // Every sample needs at least one byte of timestamp: bound the allocation
    // by what the payload could possibly hold.
    if total > raw.len() {
        return Err(BlockCodecError::Truncated);
    }
    let n_runs = r.varint()?;
    let mut out = Vec::with_capacity(total);
    let mut point = 0u32;
    for _ in 0..n_runs {
        let delta = u32::try_from(r.varint()?).map_err(|_| BlockCodecError::PointIdOverflow)?;
        point = point
            .checked_add(delta)
            .ok_or(BlockCodecError::PointIdOverflow)?;
        let count = usize::try_from(r.varint()?).map_err(|_| BlockCodecError::CountMismatch)?;
        if count == 0 || out.len() + count > total {
            return Err(BlockCodecError::CountMismatch);
        }
        let start = out.len();
        decode_timestamps(&mut r, &mut out, PointId(point), count, base_ts)?;
        decode_values(&mut r, &mut out[start..])?;
        decode_qualities(&mut r, &mut out[start..])?;
    }
    if out.len() != total {
        return Err(BlockCodecError::CountMismatch);
    }
    if r.pos != raw.len() {
        return Err(BlockCodecError::TrailingBytes);
    }
    Ok(out)
}

fn encode_timestamps(out: &mut Vec<u8>, run: &[&Sample], base_ts: i64) {
    let mut prev = base_ts;
    let mut prev_delta = 0i64;
    for (i, s) in run.iter().enumerate() {
        if i == 0 {
            put_varint(out, zigzag(s.ts_ms.wrapping_sub(base_ts)));
        } else {
            let delta = s.ts_ms.wrapping_sub(prev);
            put_varint(out, zigzag(delta.wrapping_sub(prev_delta)));
            prev_delta = delta;
        }
        prev = s.ts_ms;
    }
}

fn decode_timestamps(
    r: &mut Reader<'_>,
    out: &mut Vec<Sample>,
    point: PointId,
    count: usize,
    base_ts: i64,
) -> Result<(), BlockCodecError> {
    let mut prev = base_ts;
    let mut prev_delta = 0i64;
    for i in 0..count {
        let ts = if i == 0 {
            base_ts.wrapping_add(unzigzag(r.varint()?))
        } else {
            let delta = prev_delta.wrapping_add(unzigzag(r.varint()?));
            prev_delta = delta;
            prev.wrapping_add(delta)
        };
        prev = ts;
        out.push(Sample {
            point,
            ts_ms: ts,
            value: 0.0,
            quality: Quality::Good,
        });
    }
    Ok(())
}

/// The smallest `k` such that every value is exactly `n / 10^k` for an
/// integer `n` of at most 53 bits.
fn decimal_exponent(run: &[&Sample]) -> Option<u32> {
    'k: for k in 0..=MAX_DECIMAL_EXP {
        let scale = 10f64.powi(k as i32);
        for s in run {
            let n = (s.value * scale).round();
            if !n.is_finite() || n.abs() > 9_007_199_254_740_992.0 {
                continue 'k;
            }
            // Compare through i64, as the decoder sees it (-0.0 becomes 0).
            if ((n as i64) as f64 / scale).to_bits() != s.value.to_bits() {
                continue 'k;
            }
        }
        return Some(k);
    }
    None
}

fn encode_values(out: &mut Vec<u8>, run: &[&Sample]) {
    match decimal_exponent(run) {
        Some(k) => {
            out.push(k as u8);
            let scale = 10f64.powi(k as i32);
            let mut prev = 0i64;
            for s in run {
                let n = (s.value * scale).round() as i64;
                put_varint(out, zigzag(n.wrapping_sub(prev)));
                prev = n;
            }
        }
        None => {
            out.push(0xFF);
            let mut prev = 0u64;
            for s in run {
                let bits = s.value.to_bits();
                let x = (bits ^ prev).to_be_bytes();
                prev = bits;
                let lz = x.iter().take_while(|b| **b == 0).count();
                out.push(lz as u8);
                out.extend_from_slice(&x[lz..]);
            }
        }
    }
}

fn decode_values(r: &mut Reader<'_>, run: &mut [Sample]) -> Result<(), BlockCodecError> {
    let mode = r.byte()?;
    if mode as u32 <= MAX_DECIMAL_EXP {
        let scale = 10f64.powi(i32::from(mode));
        let mut prev = 0i64;
        for s in run {
            let n = prev.wrapping_add(unzigzag(r.varint()?));
            prev = n;
            s.value = n as f64 / scale;
        }
    } else if mode == 0xFF {
        let mut prev = 0u64;
        for s in run {
            let lz = usize::from(r.byte()?);
            if lz > 8 {
                return Err(BlockCodecError::BadValueMode(mode));
            }
            let mut x = [0u8; 8];
            x[lz..].copy_from_slice(r.take(8 - lz)?);
            let bits = u64::from_be_bytes(x) ^ prev;
            prev = bits;
            s.value = f64::from_bits(bits);
        }
    } else {
        return Err(BlockCodecError::BadValueMode(mode));
    }
    Ok(())
}

fn encode_qualities(out: &mut Vec<u8>, run: &[&Sample]) {
    let groups: Vec<&[&Sample]> = run.chunk_by(|a, b| a.quality == b.quality).collect();
    put_varint(out, groups.len() as u64);
    for g in groups {
        out.push(g[0].quality.as_u8());
        put_varint(out, g.len() as u64);
    }
}

fn decode_qualities(r: &mut Reader<'_>, run: &mut [Sample]) -> Result<(), BlockCodecError> {
    let groups = r.varint()?;
    let mut at = 0usize;
    for _ in 0..groups {
        let code = r.byte()?;
        let q = Quality::from_u8(code).ok_or(BlockCodecError::BadQuality(code))?;
        let len = usize::try_from(r.varint()?).map_err(|_| BlockCodecError::CountMismatch)?;
        let end = at.checked_add(len).ok_or(BlockCodecError::CountMismatch)?;
        let slice = run.get_mut(at..end).ok_or(BlockCodecError::CountMismatch)?;
        for s in slice {
            s.quality = q;
        }
        at = end;
    }
    if at != run.len() {
        return Err(BlockCodecError::CountMismatch);
    }
    Ok(())
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, BlockCodecError> {
        let b = *self.buf.get(self.pos).ok_or(BlockCodecError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BlockCodecError> {
        let end = self.pos.checked_add(n).ok_or(BlockCodecError::Truncated)?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(BlockCodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, BlockCodecError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(BlockCodecError::VarintOverflow);
            }
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BlockCodecError::VarintOverflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canonical(mut v: Vec<Sample>) -> Vec<Sample> {
        v.sort_by_key(|s| (s.point, s.ts_ms));
        v
    }

    fn bits_eq(a: &[Sample], b: &[Sample]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.point == y.point
                    && x.ts_ms == y.ts_ms
                    && x.quality == y.quality
                    && x.value.to_bits() == y.value.to_bits()
            })
    }

    #[test]
    fn empty_block() {
        let enc = encode_samples(&[]).unwrap();
        assert!(decode_samples(&enc).unwrap().is_empty());
    }

    #[test]
    fn scaled_values_use_decimal_mode_and_compress() {
        // 1,000 points x 60 polls of slowly moving scaled values.
        let mut v = Vec::new();
        for t in 0..60i64 {
            for p in 0..1000u32 {
                let raw = 40_000 + (p as i64 * 7 + t * (p as i64 % 3)) % 500;
                v.push(Sample::good(
                    PointId(p),
                    1_700_000_000_000 + t * 1000,
                    raw as f64 / 10.0,
                ));
            }
        }
        let enc = encode_samples(&v).unwrap();
        let per_sample = enc.len() as f64 / v.len() as f64;
        assert!(per_sample < 2.0, "{per_sample} bytes/sample");
        assert!(bits_eq(&decode_samples(&enc).unwrap(), &canonical(v)));
    }

    #[test]
    fn special_values_round_trip_bit_exact() {
        let vals = [
            f64::NAN,
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -1e-300,
            0.1 + 0.2,
        ];
        let v: Vec<Sample> = vals
            .iter()
            .enumerate()
            .map(|(i, x)| Sample {
                point: PointId(7),
                ts_ms: i as i64,
                value: *x,
                quality: Quality::Uncertain,
            })
            .collect();
        let dec = decode_samples(&encode_samples(&v).unwrap()).unwrap();
        assert!(bits_eq(&dec, &v));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_samples(b"").is_err());
        assert!(decode_samples(b"not zstd at all").is_err());
        let enc = encode_samples(&[Sample::good(PointId(1), 5, 1.5)]).unwrap();
        assert!(decode_samples(&enc[..enc.len() - 1]).is_err());
        // Valid zstd frame around nonsense.
        let bogus = zstd::bulk::compress(&[1, 0, 200, 1, 1, 0xff, 0xff, 0xff], 1).unwrap();
        assert!(decode_samples(&bogus).is_err());
    }

    fn arb_sample() -> impl Strategy<Value = Sample> {
        (
            0u32..50,
            any::<i64>(),
            prop_oneof![
                any::<f64>(),
                (-100_000i64..100_000).prop_map(|n| n as f64 / 100.0)
            ],
            0u8..3,
        )
            .prop_map(|(p, ts, value, q)| Sample {
                point: PointId(p),
                ts_ms: ts,
                value,
                quality: Quality::from_u8(q).unwrap(),
            })
    }

    proptest! {
        #[test]
        fn round_trip(v in proptest::collection::vec(arb_sample(), 0..400)) {
            let enc = encode_samples(&v).unwrap();
            let dec = decode_samples(&enc).unwrap();
            prop_assert!(bits_eq(&dec, &canonical(v)));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_samples(&bytes);
            if let Ok(raw) = zstd::bulk::compress(&bytes, 1) {
                let _ = decode_samples(&raw);
            }
        }
    }
}
