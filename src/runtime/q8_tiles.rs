//! Matrix products with weights in GGUF's 8-bit blocks, on CPUs with AVX-512 VNNI or AVX2.
//!
//! candle's fast quantized kernels take only rows whose length is a multiple of 256. Gemma 3's rows
//! are 640 long, so every q, k, v, gate and up projection and the 262,144-row LM head ran through its
//! dot product of one pair of blocks at a time. Here the weights of 16 rows are interleaved so that
//! one 64-byte load holds four consecutive weights of each row, and one `vpdpbusd` multiplies them
//! with four bytes of an activation row: 16 partial dot products an instruction, each load reused
//! for up to four activation rows. CPUs with AVX2 but not AVX-512 VNNI (most AMD CPUs before Zen 4,
//! Intel's client CPUs) take a line as two halves of 8 rows and multiply with `vpmaddubsw` and
//! `vpmaddwd`, which make the same exact integers.
//!
//! The arithmetic: weights are blocks of 32 small integers with an f16 scale (Q8_0; Q5_0 and Q4_1 are
//! read into that form exactly, Q4_1 keeping its f16 offset per block), activations Q8_0 blocks
//! quantized exactly as candle and ggml quantize them. A block's dot product is an exact integer, and
//! each output accumulates `(weight scale * activation scale) * block dot` with one fused multiply-add
//! a block (and `offset * (activation scale * activation sum)` with a second where blocks have
//! offsets), in block order. So the result does not depend on tiling or threads, and
//! `reference_matmul` computes it bit for bit in plain code.

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use crate::Result;

const BLOCK: usize = 32;
const TILE_ROWS: usize = 16;
/// 64-byte lines per (tile, block): 32 weights of 16 rows.
const LINES_PER_BLOCK: usize = BLOCK * TILE_ROWS / 64;
/// Activation rows one kernel call multiplies with each weight load.
const ROWS_PER_CALL: usize = 4;

/// 64 weights, aligned so that no load crosses a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// The instructions a tiled product runs on. Both make the same exact block dots and accumulate them
/// the same way, so their results are equal bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// AVX-512 with VNNI: a line's 16 rows at once.
    Vnni,
    /// AVX2 with FMA and F16C: a line in two halves of 8 rows.
    Avx2,
}

impl Kernel {
    /// Fastest first.
    const ALL: [Kernel; 2] = [Kernel::Vnni, Kernel::Avx2];

    /// Whether this CPU has the instructions the kernel runs on.
    fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Kernel::Vnni => has!("avx512f") && has!("avx512bw") && has!("avx512vnni"),
                Kernel::Avx2 => has!("avx2") && has!("fma") && has!("f16c"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}

/// The fastest kernel this CPU runs, if any.
fn detected_kernel() -> Option<Kernel> {
    Kernel::ALL.into_iter().find(|kernel| kernel.runs_here())
}

/// What this CPU's Q8_0, Q5_0 and Q4_1 products run on, for reports: speed figures differ by it.
pub fn kernel_description() -> &'static str {
    match detected_kernel() {
        Some(Kernel::Vnni) => "lafn's tiles, AVX-512 VNNI",
        Some(Kernel::Avx2) => "lafn's tiles, AVX2",
        None => "candle's kernels",
    }
}

/// A (rows, cols) weight matrix of 8-bit block values, interleaved in tiles of 16 rows.
pub struct TiledQ8 {
    rows: usize,
    cols: usize,
    kernel: Kernel,
    /// Per (tile, block), `LINES_PER_BLOCK` lines: line g holds weights 4g..4g+4 of the block of each
    /// of the tile's rows (row r at bytes 4r..4r+4), each plus 128: `vpdpbusd` multiplies unsigned
    /// bytes by signed ones, and the 128s come out again with the activation block's sum.
    lines: Vec<Line>,
    /// Per (tile, block), the scales of the tile's 16 rows.
    scales: Vec<f16>,
    /// Per (tile, block), the offsets of the tile's 16 rows (a value is `integer * scale + offset`);
    /// empty for block types without offsets.
    offsets: Vec<f16>,
}

impl std::fmt::Debug for TiledQ8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TiledQ8({} x {})", self.rows, self.cols)
    }
}

impl TiledQ8 {
    /// The tiled form of a Q8_0, Q5_0 or Q4_1 matrix, if this CPU has the kernel and the shape tiles.
    pub fn from_qtensor(q: &QTensor) -> Result<Option<Self>> {
        let Ok((rows, cols)) = q.shape().dims2() else { return Ok(None) };
        let Some(kernel) = detected_kernel() else { return Ok(None) };
        if Block::bytes(q.dtype()).is_none() {
            return Ok(None);
        }
        Ok(Self::from_blocks(rows, cols, q.dtype(), &q.data()?, kernel))
    }

    /// Tiles row-major blocks of `dtype` for `kernel`; `None` unless the rows come in tiles and the
    /// columns in blocks.
    fn from_blocks(rows: usize, cols: usize, dtype: GgmlDType, bytes: &[u8], kernel: Kernel) -> Option<Self> {
        let block_bytes = Block::bytes(dtype)?;
        let blocks = cols / BLOCK;
        if rows == 0 || !rows.is_multiple_of(TILE_ROWS) || cols == 0 || !cols.is_multiple_of(BLOCK) {
            return None;
        }
        if bytes.len() != rows * blocks * block_bytes {
            return None;
        }
        let tiles = rows / TILE_ROWS;
        let mut lines = vec![Line([0; 64]); tiles * blocks * LINES_PER_BLOCK];
        let mut scales = vec![f16::ZERO; tiles * blocks * TILE_ROWS];
        // Made at the first block with an offset: block types have offsets in every block or none.
        let mut offsets = Vec::new();
        for (i, bytes) in bytes.chunks_exact(block_bytes).enumerate() {
            let (row, b) = (i / blocks, i % blocks);
            let (tile, lane) = (row / TILE_ROWS, row % TILE_ROWS);
            let block = Block::decode(dtype, bytes);
            let at = tile * blocks + b;
            scales[at * TILE_ROWS + lane] = block.scale;
            if let Some(offset) = block.offset {
                if offsets.is_empty() {
                    offsets = vec![f16::ZERO; scales.len()];
                }
                offsets[at * TILE_ROWS + lane] = offset;
            }
            for (k, &q) in block.values.iter().enumerate() {
                lines[at * LINES_PER_BLOCK + k / 4].0[lane * 4 + k % 4] = (q as i16 + 128) as u8;
            }
        }
        Some(Self { rows, cols, kernel, lines, scales, offsets })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    pub fn storage_bytes(&self) -> usize {
        self.lines.len() * size_of::<Line>() + (self.scales.len() + self.offsets.len()) * size_of::<f16>()
    }

    /// One row's values, as candle dequantizes its blocks (`integer * scale [+ offset]` in f32).
    /// Decoded a block at a time (a row's 32 values of a block lie four to a line in 8 lines).
    pub fn row(&self, row: usize, out: &mut [f32]) {
        let (tile, lane) = (row / TILE_ROWS, row % TILE_ROWS);
        let blocks = self.cols / BLOCK;
        for (b, values) in out.chunks_exact_mut(BLOCK).enumerate() {
            let at = tile * blocks + b;
            let scale = self.scales[at * TILE_ROWS + lane].to_f32();
            let offset = self.offsets.get(at * TILE_ROWS + lane).map(|o| o.to_f32());
            let lines = &self.lines[at * LINES_PER_BLOCK..(at + 1) * LINES_PER_BLOCK];
            for (four, line) in values.chunks_exact_mut(4).zip(lines) {
                for (value, &byte) in four.iter_mut().zip(&line.0[lane * 4..lane * 4 + 4]) {
                    *value = (byte as i32 - 128) as f32 * scale;
                    if let Some(offset) = offset {
                        *value += offset;
                    }
                }
            }
        }
    }

    /// The integer at (row, col), and the scale and offset of its block.
    #[cfg(test)]
    fn stored(&self, row: usize, col: usize) -> (i32, f16, Option<f16>) {
        let at = (row / TILE_ROWS) * (self.cols / BLOCK) + col / BLOCK;
        let (lane, k) = (row % TILE_ROWS, col % BLOCK);
        let byte = self.lines[at * LINES_PER_BLOCK + k / 4].0[lane * 4 + k % 4];
        let offset = self.offsets.get(at * TILE_ROWS + lane).copied();
        (byte as i32 - 128, self.scales[at * TILE_ROWS + lane], offset)
    }

    /// `x (m, cols) @ self^T`: (m, rows), row-major.
    pub fn matmul(&self, x: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        self.matmul_into(x, &mut out);
        out
    }

    /// [`TiledQ8::matmul`] into `out`, whose memory is reused when it is large enough.
    pub fn matmul_into(&self, x: &[f32], out: &mut Vec<f32>) {
        let acts = quantize_rows(x, self.cols);
        let m = x.len() / self.cols;
        out.clear();
        out.resize(m * self.rows, 0.0);
        let (tiles, blocks) = (self.rows / TILE_ROWS, self.cols / BLOCK);
        // A decode step has one activation row: more tiles a call keep more loads in flight.
        let tiles_per_unit = if m == 1 { 4 } else { 2 };
        let units = tiles.div_ceil(tiles_per_unit);
        let out_at = out.as_mut_ptr() as usize;
        candle_core::utils::barrier_pool().execute_chunked(units, |range| {
            for unit in range {
                let first = unit * tiles_per_unit;
                let tiles_here = tiles_per_unit.min(tiles - first);
                for row0 in (0..m).step_by(ROWS_PER_CALL) {
                    let rows_here = ROWS_PER_CALL.min(m - row0);
                    // SAFETY: the CPU has `self.kernel`'s features (detected when the matrix was
                    // tiled); every (activation row, tile) pair belongs to exactly one unit, so no two
                    // calls write the same output.
                    unsafe {
                        let acts_here = &acts[row0 * blocks..(row0 + rows_here) * blocks];
                        self.tiles_at(first, tiles_here, acts_here, (out_at as *mut f32).add(row0 * self.rows));
                    }
                }
            }
        });
    }

    /// Tiles `first..first + count` times up to `ROWS_PER_CALL` activation rows (`acts`, their
    /// blocks), into `out` (one row of `self.rows` outputs per activation row).
    #[cfg(target_arch = "x86_64")]
    unsafe fn tiles_at(&self, first: usize, count: usize, acts: &[ActivationBlock], out: *mut f32) {
        let rows = acts.len() / (self.cols / BLOCK);
        // Tiles a call: a decode step (one activation row) takes up to 4, keeping more loads in
        // flight; otherwise VNNI's 32 registers hold 2 tiles' sums for 4 rows, AVX2's 16 one tile's.
        macro_rules! by_rows {
            ($kernel:ident, $tiles:literal, $tile:expr) => {
                match rows {
                    1 => $kernel::tiles::<$tiles, 1>(self, $tile, acts, out),
                    2 => $kernel::tiles::<$tiles, 2>(self, $tile, acts, out),
                    3 => $kernel::tiles::<$tiles, 3>(self, $tile, acts, out),
                    _ => $kernel::tiles::<$tiles, 4>(self, $tile, acts, out),
                }
            };
        }
        let mut tile = first;
        while tile < first + count {
            let left = first + count - tile;
            tile += match (self.kernel, rows) {
                (Kernel::Vnni, 1) if left >= 4 => {
                    vnni::tiles::<4, 1>(self, tile, acts, out);
                    4
                }
                (Kernel::Avx2, 1) if left >= 4 => {
                    avx2::tiles::<4, 1>(self, tile, acts, out);
                    4
                }
                (Kernel::Avx2, 1) if left >= 2 => {
                    avx2::tiles::<2, 1>(self, tile, acts, out);
                    2
                }
                (Kernel::Vnni, _) if left >= 2 => {
                    by_rows!(vnni, 2, tile);
                    2
                }
                (Kernel::Vnni, _) => {
                    by_rows!(vnni, 1, tile);
                    1
                }
                (Kernel::Avx2, _) => {
                    by_rows!(avx2, 1, tile);
                    1
                }
            };
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn tiles_at(&self, _: usize, _: usize, _: &[ActivationBlock], _: *mut f32) {
        unreachable!("tiled matrices are made only where a kernel was detected")
    }
}

/// One quantized block of an activation row.
#[derive(Clone, Copy)]
struct ActivationBlock {
    /// The 32 values, four to a word (little-endian), as `vpdpbusd` broadcasts them.
    words: [i32; BLOCK / 4],
    /// The block's scale, rounded through f16 as Q8_0 stores it.
    scale: f32,
    /// `-128 * sum(values)`: takes out the 128 added to every weight.
    bias: i32,
    /// `scale * sum(values)`: what a weight block's offset multiplies.
    scaled_sum: f32,
}

/// Quantizes rows of `cols` values to Q8_0 as candle's `BlockQ8_0::from_float` (and ggml) do.
fn quantize_rows(x: &[f32], cols: usize) -> Vec<ActivationBlock> {
    debug_assert!(x.len().is_multiple_of(cols) && cols.is_multiple_of(BLOCK));
    x.chunks_exact(BLOCK)
        .map(|values| {
            let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q: [i8; BLOCK] = std::array::from_fn(|k| (values[k] * inverse).round() as i8);
            let mut words = [0i32; BLOCK / 4];
            for (word, four) in words.iter_mut().zip(q.chunks_exact(4)) {
                *word = i32::from_le_bytes([four[0] as u8, four[1] as u8, four[2] as u8, four[3] as u8]);
            }
            let sum: i32 = q.iter().map(|&v| v as i32).sum();
            let scale = f16::from_f32(d).to_f32();
            ActivationBlock { words, scale, bias: -128 * sum, scaled_sum: scale * sum as f32 }
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{ActivationBlock, TiledQ8, BLOCK, LINES_PER_BLOCK, TILE_ROWS};

    /// `TILES` tiles from `first` times `ROWS` activation rows (`acts`, row-major blocks), written
    /// to `out` (activation rows of `w.rows` outputs).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tiles<const TILES: usize, const ROWS: usize>(
        w: &TiledQ8,
        first: usize,
        acts: &[ActivationBlock],
        out: *mut f32,
    ) {
        let blocks = w.cols / BLOCK;
        let mut acc = [[_mm512_setzero_ps(); TILES]; ROWS];
        for b in 0..blocks {
            let act: [&ActivationBlock; ROWS] = std::array::from_fn(|r| &acts[r * blocks + b]);
            let mut dots: [[__m512i; TILES]; ROWS] = std::array::from_fn(|r| [_mm512_set1_epi32(act[r].bias); TILES]);
            for g in 0..LINES_PER_BLOCK {
                let lines: [__m512i; TILES] = std::array::from_fn(|t| {
                    let line = &w.lines[((first + t) * blocks + b) * LINES_PER_BLOCK + g];
                    _mm512_load_si512(line.0.as_ptr() as *const __m512i)
                });
                for r in 0..ROWS {
                    let four = _mm512_set1_epi32(act[r].words[g]);
                    for t in 0..TILES {
                        dots[r][t] = _mm512_dpbusd_epi32(dots[r][t], lines[t], four);
                    }
                }
            }
            for t in 0..TILES {
                let at = ((first + t) * blocks + b) * TILE_ROWS;
                let scales = sixteen(&w.scales[at..at + TILE_ROWS]);
                for r in 0..ROWS {
                    let scale = _mm512_mul_ps(scales, _mm512_set1_ps(act[r].scale));
                    acc[r][t] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dots[r][t]), acc[r][t]);
                }
                if !w.offsets.is_empty() {
                    let offsets = sixteen(&w.offsets[at..at + TILE_ROWS]);
                    for r in 0..ROWS {
                        acc[r][t] = _mm512_fmadd_ps(offsets, _mm512_set1_ps(act[r].scaled_sum), acc[r][t]);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (t, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * w.rows + (first + t) * TILE_ROWS), *acc);
            }
        }
    }

    /// 16 f16 values widened to f32.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sixteen(values: &[half::f16]) -> __m512 {
        debug_assert_eq!(values.len(), TILE_ROWS);
        _mm512_cvtph_ps(_mm256_loadu_si256(values.as_ptr() as *const __m256i))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{ActivationBlock, TiledQ8, BLOCK, LINES_PER_BLOCK, TILE_ROWS};

    /// As [`super::vnni::tiles`], a line's 16 rows as two registers of 8. `vpmaddubsw` multiplies
    /// unsigned bytes by signed ones and adds pairs into 16 bits, saturating: the weights' magnitudes
    /// (at most 128) times the activations carrying the weights' signs (at most 127) keep every pair
    /// within them, so the block dots are the same exact integers as VNNI's.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn tiles<const TILES: usize, const ROWS: usize>(
        w: &TiledQ8,
        first: usize,
        acts: &[ActivationBlock],
        out: *mut f32,
    ) {
        let blocks = w.cols / BLOCK;
        let ones = _mm256_set1_epi16(1);
        // The stored weights carry +128 (for `vpdpbusd`): flipping the top bit gives them signed.
        let flip = _mm256_set1_epi8(i8::MIN);
        let mut acc = [[[_mm256_setzero_ps(); 2]; TILES]; ROWS];
        for b in 0..blocks {
            let act: [&ActivationBlock; ROWS] = std::array::from_fn(|r| &acts[r * blocks + b]);
            let mut dots = [[[_mm256_setzero_si256(); 2]; TILES]; ROWS];
            for g in 0..LINES_PER_BLOCK {
                let mut signs = [[_mm256_setzero_si256(); 2]; TILES];
                let mut magnitudes = [[_mm256_setzero_si256(); 2]; TILES];
                for t in 0..TILES {
                    let line = w.lines[((first + t) * blocks + b) * LINES_PER_BLOCK + g].0.as_ptr() as *const __m256i;
                    for h in 0..2 {
                        signs[t][h] = _mm256_xor_si256(_mm256_load_si256(line.add(h)), flip);
                        magnitudes[t][h] = _mm256_abs_epi8(signs[t][h]);
                    }
                }
                for r in 0..ROWS {
                    let four = _mm256_set1_epi32(act[r].words[g]);
                    for t in 0..TILES {
                        for h in 0..2 {
                            let pairs = _mm256_maddubs_epi16(magnitudes[t][h], _mm256_sign_epi8(four, signs[t][h]));
                            dots[r][t][h] = _mm256_add_epi32(dots[r][t][h], _mm256_madd_epi16(pairs, ones));
                        }
                    }
                }
            }
            for t in 0..TILES {
                let at = ((first + t) * blocks + b) * TILE_ROWS;
                let scales = halves(&w.scales[at..at + TILE_ROWS]);
                let offsets = (!w.offsets.is_empty()).then(|| halves(&w.offsets[at..at + TILE_ROWS]));
                for r in 0..ROWS {
                    let act_scale = _mm256_set1_ps(act[r].scale);
                    for h in 0..2 {
                        let scale = _mm256_mul_ps(scales[h], act_scale);
                        acc[r][t][h] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dots[r][t][h]), acc[r][t][h]);
                        if let Some(offsets) = offsets {
                            let sum = _mm256_set1_ps(act[r].scaled_sum);
                            acc[r][t][h] = _mm256_fmadd_ps(offsets[h], sum, acc[r][t][h]);
                        }
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (t, acc) in acc.iter().enumerate() {
                for (h, acc) in acc.iter().enumerate() {
                    _mm256_storeu_ps(out.add(r * w.rows + (first + t) * TILE_ROWS + h * 8), *acc);
                }
            }
        }
    }

    /// 16 f16 values widened to f32, as two registers of 8.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn halves(values: &[half::f16]) -> [__m256; 2] {
        debug_assert_eq!(values.len(), TILE_ROWS);
        let p = values.as_ptr() as *const __m128i;
        [_mm256_cvtph_ps(_mm_loadu_si128(p)), _mm256_cvtph_ps(_mm_loadu_si128(p.add(1)))]
    }
}

/// One block of 32 weights as the tiles hold it.
struct Block {
    scale: f16,
    offset: Option<f16>,
    values: [i8; BLOCK],
}

impl Block {
    /// Bytes of one block of the types read into tiles (ggml's layouts).
    fn bytes(dtype: GgmlDType) -> Option<usize> {
        match dtype {
            GgmlDType::Q8_0 => Some(2 + BLOCK),
            GgmlDType::Q5_0 => Some(2 + 4 + BLOCK / 2),
            GgmlDType::Q4_1 => Some(2 + 2 + BLOCK / 2),
            _ => None,
        }
    }

    /// Q8_0: scale, 32 signed bytes. Q5_0: scale, 32 high bits, 32 low nibbles, values -16..=15.
    /// Q4_1: scale, offset, 32 nibbles, values 0..=15. (`bytes` has `Block::bytes(dtype)` bytes.)
    fn decode(dtype: GgmlDType, bytes: &[u8]) -> Self {
        let scale = f16::from_le_bytes([bytes[0], bytes[1]]);
        let nibbles = |low: &[u8], j: usize| if j < BLOCK / 2 { low[j] & 0x0F } else { low[j - BLOCK / 2] >> 4 };
        match dtype {
            GgmlDType::Q5_0 => {
                let high = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
                let values =
                    std::array::from_fn(|j| (nibbles(&bytes[6..], j) | (((high >> j) & 1) as u8) << 4) as i8 - 16);
                Self { scale, offset: None, values }
            }
            GgmlDType::Q4_1 => {
                let offset = Some(f16::from_le_bytes([bytes[2], bytes[3]]));
                Self { scale, offset, values: std::array::from_fn(|j| nibbles(&bytes[4..], j) as i8) }
            }
            _ => Self { scale, offset: None, values: std::array::from_fn(|j| bytes[2 + j] as i8) },
        }
    }
}

/// A Q5_0 matrix as Q8_0 holding exactly its values (integers -16..=15 times the block's f16 scale),
/// for candle's kernels, so that a Q5_0 model computes with its own values, not a re-rounding of
/// them. `None` for other types.
pub fn exact_q8_0(q: &QTensor) -> Result<Option<QTensor>> {
    if q.dtype() != GgmlDType::Q5_0 {
        return Ok(None);
    }
    let bytes = q.data()?;
    let block_bytes = Block::bytes(GgmlDType::Q5_0).expect("Q5_0 is read");
    let mut q8 = Vec::with_capacity(bytes.len() / block_bytes * (2 + BLOCK));
    for block in bytes.chunks_exact(block_bytes).map(|b| Block::decode(GgmlDType::Q5_0, b)) {
        q8.extend_from_slice(&block.scale.to_le_bytes());
        q8.extend(block.values.iter().map(|&v| v as u8));
    }
    let storage = candle_core::quantized::QStorage::from_data(q8.into(), &q.device(), GgmlDType::Q8_0)?;
    Ok(Some(QTensor::new(storage, q.shape().clone())?))
}

/// What the tiled kernel computes, in plain code: the tests hold the kernel to it bit for bit.
#[cfg(test)]
fn reference_matmul(w: &TiledQ8, x: &[f32]) -> Vec<f32> {
    let acts = quantize_rows(x, w.cols);
    let blocks = w.cols / BLOCK;
    let m = x.len() / w.cols;
    let mut out = vec![0f32; m * w.rows];
    for row in 0..w.rows {
        for i in 0..m {
            let mut acc = 0f32;
            for b in 0..blocks {
                let act = &acts[i * blocks + b];
                let dot: i32 = (0..BLOCK)
                    .map(|k| w.stored(row, b * BLOCK + k).0 * (act.words[k / 4] >> (8 * (k % 4))) as i8 as i32)
                    .sum();
                let (_, scale, offset) = w.stored(row, b * BLOCK);
                acc = (scale.to_f32() * act.scale).mul_add(dot as f32, acc);
                if let Some(offset) = offset {
                    acc = offset.to_f32().mul_add(act.scaled_sum, acc);
                }
            }
            out[i * w.rows + row] = acc;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Module, Tensor};

    use super::*;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// The block types read into tiles.
    const TILED: [GgmlDType; 3] = [GgmlDType::Q8_0, GgmlDType::Q5_0, GgmlDType::Q4_1];

    fn matrix(rows: usize, cols: usize, seed: u64, dtype: GgmlDType) -> QTensor {
        let t = Tensor::from_vec(random(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
        QTensor::quantize(&t, dtype).unwrap()
    }

    fn tiled_for(q: &QTensor, kernel: Kernel) -> TiledQ8 {
        let (rows, cols) = q.shape().dims2().unwrap();
        TiledQ8::from_blocks(rows, cols, q.dtype(), &q.data().unwrap(), kernel).unwrap()
    }

    /// Tiled for the kernel this CPU runs (the layout is the same for every kernel).
    fn tiled(q: &QTensor) -> TiledQ8 {
        tiled_for(q, detected_kernel().unwrap_or(Kernel::Avx2))
    }

    /// Every kernel this CPU can run: a CPU with VNNI runs the AVX2 kernel too.
    fn runnable_kernels() -> Vec<Kernel> {
        Kernel::ALL.into_iter().filter(|kernel| kernel.runs_here()).collect()
    }

    #[test]
    fn tiled_rows_are_candles_dequantized_rows() {
        for dtype in TILED {
            let q = matrix(48, 96, 1, dtype);
            let w = tiled(&q);
            let dense = q.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
            let mut row = vec![0f32; 96];
            for (r, expected) in dense.iter().enumerate() {
                w.row(r, &mut row);
                assert_eq!(&row, expected, "{dtype:?} row {r}");
            }
        }
    }

    /// Against the product of the weights' exact values with unquantized activations, the reference
    /// (8-bit activations) errs as little as candle's quantized product does.
    #[test]
    fn the_reference_product_is_as_near_the_exact_product_as_candles() {
        for dtype in TILED {
            let q = matrix(64, 640, 2, dtype);
            let x = random(3 * 640, 3);
            let ours = reference_matmul(&tiled(&q), &x);
            let input = Tensor::from_vec(x.clone(), (3, 640), &Device::Cpu).unwrap();
            let product = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let weights = q.dequantize(&Device::Cpu).unwrap();
            let candles = product(candle_core::quantized::QMatMul::from_qtensor(q).unwrap().forward(&input).unwrap());
            let exact = product(input.matmul(&weights.t().unwrap()).unwrap());
            let mean_error = |values: &[f32]| {
                values.iter().zip(&exact).map(|(a, b)| (a - b).abs()).sum::<f32>() / exact.len() as f32
            };
            let (ours, candles) = (mean_error(&ours), mean_error(&candles));
            eprintln!("{dtype:?}: mean error ours {ours}, candle's {candles}");
            assert!(ours <= 1.1 * candles + 1e-6, "{dtype:?}: mean error {ours}, candle's {candles}");
        }
    }

    #[test]
    fn every_kernel_equals_the_reference_bit_for_bit_for_every_shape_it_tiles() {
        let kernels = runnable_kernels();
        if kernels.is_empty() {
            eprintln!("skipped: this CPU has neither AVX-512 VNNI nor AVX2, and lafn uses candle's kernels on it");
            return;
        }
        // Odd tile counts and every number of activation rows a call takes, decode (m = 1) included.
        for kernel in kernels {
            for dtype in TILED {
                for (rows, cols, m) in [
                    (16, 32, 1),
                    (48, 640, 1),
                    (80, 96, 1),
                    (112, 64, 1),
                    (48, 640, 2),
                    (80, 64, 3),
                    (32, 640, 7),
                    (112, 160, 13),
                ] {
                    let w = tiled_for(&matrix(rows, cols, rows as u64, dtype), kernel);
                    let x = random(m * cols, m as u64);
                    let label = format!("{kernel:?} {dtype:?} {rows} x {cols}, {m} rows");
                    assert_eq!(w.matmul(&x), reference_matmul(&w, &x), "{label}");
                }
            }
        }
    }

    /// The extremes of both factors: weights of -128 (a Q8_0 file may hold them) and 127, activations
    /// of -127 and 127, where a saturating 16-bit pair sum would first go wrong.
    #[test]
    fn every_kernel_is_exact_at_the_extreme_values() {
        let (rows, cols) = (32, 64);
        let mut bytes = Vec::new();
        for i in 0..rows * cols / BLOCK {
            bytes.extend_from_slice(&f16::from_f32(0.5).to_le_bytes());
            bytes.extend((0..BLOCK).map(|k| if (i + k) % 3 == 0 { 0x80u8 } else { 0x7F }));
        }
        let x: Vec<f32> = (0..2 * cols).map(|k| if k % 5 == 0 { 1.0 } else { -1.0 }).collect();
        for kernel in runnable_kernels() {
            let w = TiledQ8::from_blocks(rows, cols, GgmlDType::Q8_0, &bytes, kernel).unwrap();
            assert_eq!(w.stored(0, 0).0, -128);
            assert_eq!(w.matmul(&x), reference_matmul(&w, &x), "{kernel:?}");
        }
    }

    #[test]
    fn q5_0_becomes_q8_0_with_exactly_its_values() {
        let q5 = matrix(32, 128, 4, GgmlDType::Q5_0);
        let q8 = exact_q8_0(&q5).unwrap().unwrap();
        assert_eq!(q8.dtype(), GgmlDType::Q8_0);
        let values = |q: &QTensor| q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(values(&q8), values(&q5));
        // Requantizing the dequantized values, as before, does not keep them.
        let requantized = QTensor::quantize(&q5.dequantize(&Device::Cpu).unwrap(), GgmlDType::Q8_0).unwrap();
        assert_ne!(values(&requantized), values(&q5));
    }
}
