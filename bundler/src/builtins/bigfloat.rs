//! The part of Go's `math/big.Float` that OPA's arithmetic goes through, ported so sck computes
//! what OPA computes: a number is read from its decimal text as `Float.SetString` reads it
//! (precision 64, round half to even, the power of five at 128 bits as Go computes it), an
//! operation is the exact result rounded to the operands' precision (`Add`, `Sub`, `Mul`,
//! `Quo` are correctly rounded in Go), and a result is written back as OPA's `FloatToNumber`
//! does: `Text('f', -1)` when it is an integer, else `Text('g', -1)` — the shortest decimal
//! that reads back to the same value at that precision (Go's `roundShortest`, kept as it is,
//! including its digit-by-digit walk).
//!
//! Invariant: a [`Float`] is exactly `±mant × 2^exp` with `mant` below `2^prec`; zero has
//! `mant == 0`.

use std::cmp::Ordering;

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, Zero};

/// The precision `SetString` gives a `Float` whose precision is unset.
pub const PREC: u32 = 64;

/// A binary floating-point number of a given precision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Float {
    neg: bool,
    mant: BigUint,
    exp: i64,
    prec: u32,
}

/// `±num / den × 2^exp`, correctly rounded (half to even) to `prec` bits.
fn rounded(neg: bool, num: &BigUint, den: &BigUint, exp: i64, prec: u32) -> Float {
    if num.is_zero() {
        return Float::zero(prec);
    }
    let want = u64::from(prec);
    let mut shift = i64::from(prec) - (num.bits() as i64 - den.bits() as i64);
    loop {
        let (n, d) = if shift >= 0 {
            (num << shift as u64, den.clone())
        } else {
            (num.clone(), den << shift.unsigned_abs())
        };
        let (mut q, r) = n.div_rem(&d);
        match q.bits().cmp(&want) {
            Ordering::Greater => shift -= 1,
            Ordering::Less => shift += 1,
            Ordering::Equal => {
                let up = match (r << 1u8).cmp(&d) {
                    Ordering::Less => false,
                    Ordering::Greater => true,
                    Ordering::Equal => q.bit(0),
                };
                let mut exp = exp - shift;
                if up {
                    q += 1u8;
                    if q.bits() > want {
                        q >>= 1u8;
                        exp += 1;
                    }
                }
                return Float {
                    neg,
                    mant: q,
                    exp,
                    prec,
                };
            }
        }
    }
}

impl Float {
    pub fn zero(prec: u32) -> Float {
        Float {
            neg: false,
            mant: BigUint::zero(),
            exp: 0,
            prec,
        }
    }

    /// `±mant × 2^exp` rounded to `prec` bits.
    pub fn new(neg: bool, mant: BigUint, exp: i64, prec: u32) -> Float {
        rounded(neg, &mant, &BigUint::one(), exp, prec)
    }

    /// A double exactly, at its own precision (53 bits; fewer for a subnormal, whose ulp is
    /// fixed); `None` unless finite.
    pub fn from_f64(f: f64) -> Option<Float> {
        if !f.is_finite() {
            return None;
        }
        let bits = f.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i64;
        let fraction = bits & ((1u64 << 52) - 1);
        let (mant, exp, prec) = if biased == 0 {
            (fraction, -1074, 64 - fraction.leading_zeros())
        } else {
            (fraction | (1u64 << 52), biased - 1075, 53)
        };
        Some(Float::new(f < 0.0, BigUint::from(mant), exp, prec.max(1)))
    }

    /// The text a client sends for a double: the shortest decimal that reads back to it and,
    /// of those, the closest, an exact tie going to the even digit (Go's `strconv`, Python's
    /// `repr`, JavaScript). Rust's `{:e}` gives the same except on ties, which it rounds up
    /// (`9.606470632805263e13` for the double whose value is 96064706328052.625).
    pub fn shortest_of(f: f64) -> Option<String> {
        let exact = Float::from_f64(f)?;
        let rust = format!("{f:e}");
        let (mantissa, exp) = rust.split_once('e')?;
        let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        let point = exp.parse::<i64>().ok()? + 1;
        let mut d = Decimal::of(&exact.mant, exact.exp);
        let tie =
            d.mant.len() == digits.len() + 1 && d.mant.last() == Some(&b'5') && d.exp == point;
        if !tie {
            return Some(rust);
        }
        d.round(digits.len());
        let sign = if f < 0.0 { "-" } else { "" };
        let text = format!("{sign}0.{}e{}", String::from_utf8_lossy(&d.mant), d.exp);
        Some(if text.parse::<f64>() == Ok(f) {
            text
        } else {
            rust
        })
    }

    pub fn is_zero(&self) -> bool {
        self.mant.is_zero()
    }

    /// Reads a decimal number (`[-]digits[.digits][e[±]digits]`) as Go's `SetString` does on
    /// a `Float` of unset precision; `None` for anything else.
    pub fn parse(text: &str) -> Option<Float> {
        let (neg, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (mantissa, exp10) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = format!("{int}{frac}");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let m = BigUint::parse_bytes(digits.as_bytes(), 10)?;
        if m.is_zero() {
            return Some(Float {
                neg,
                ..Float::zero(PREC)
            });
        }
        // 10^e5 = 5^e5 × 2^e5: the power of two is exact, the power of five is Go's.
        let exp5 = exp10.checked_sub(i64::try_from(frac.len()).ok()?)?;
        if exp5 == 0 {
            return Some(Float::new(neg, m, 0, PREC));
        }
        let p = pow5(exp5.unsigned_abs(), PREC + 64);
        Some(if exp5 < 0 {
            rounded(neg, &m, &p.mant, exp5 - p.exp, PREC)
        } else {
            rounded(neg, &(m * &p.mant), &BigUint::one(), exp5 + p.exp, PREC)
        })
    }

    /// The integer part (truncated toward zero), as Go's `Float.Int`: sign and magnitude.
    pub fn trunc(&self) -> (bool, BigUint) {
        let magnitude = if self.exp >= 0 {
            &self.mant << self.exp as u64
        } else {
            &self.mant >> self.exp.unsigned_abs()
        };
        (self.neg && !magnitude.is_zero(), magnitude)
    }

    /// `x + y` (or `x - y`), rounded to the larger precision.
    fn add_signed(&self, y: &Float, negate: bool) -> Float {
        let prec = self.prec.max(y.prec);
        let y_neg = y.neg != negate;
        if y.is_zero() {
            return Float::new(self.neg, self.mant.clone(), self.exp, prec);
        }
        if self.is_zero() {
            return Float::new(y_neg, y.mant.clone(), y.exp, prec);
        }
        let exp = self.exp.min(y.exp);
        let a = &self.mant << (self.exp - exp) as u64;
        let b = &y.mant << (y.exp - exp) as u64;
        if self.neg == y_neg {
            return Float::new(self.neg, a + b, exp, prec);
        }
        match a.cmp(&b) {
            Ordering::Equal => Float::zero(prec),
            Ordering::Greater => Float::new(self.neg, a - b, exp, prec),
            Ordering::Less => Float::new(y_neg, b - a, exp, prec),
        }
    }

    pub fn add(&self, y: &Float) -> Float {
        self.add_signed(y, false)
    }

    pub fn sub(&self, y: &Float) -> Float {
        self.add_signed(y, true)
    }

    pub fn mul(&self, y: &Float) -> Float {
        self.mul_prec(y, self.prec.max(y.prec))
    }

    fn mul_prec(&self, y: &Float, prec: u32) -> Float {
        Float::new(
            self.neg != y.neg,
            &self.mant * &y.mant,
            self.exp + y.exp,
            prec,
        )
    }

    /// `x / y`; `None` when `y` is zero.
    pub fn quo(&self, y: &Float) -> Option<Float> {
        if y.is_zero() {
            return None;
        }
        Some(rounded(
            self.neg != y.neg,
            &self.mant,
            &y.mant,
            self.exp - y.exp,
            self.prec.max(y.prec),
        ))
    }

    /// Whether the value is an integer (Go's `IsInt`).
    fn is_int(&self) -> bool {
        self.exp >= 0 || self.mant.trailing_zeros().unwrap_or(0) >= self.exp.unsigned_abs()
    }

    /// OPA's `FloatToNumber`: `Text('f', -1)` for an integer, `Text('g', -1)` otherwise.
    pub fn text(&self) -> String {
        let mut d = Decimal::of(&self.mant, self.exp);
        round_shortest(&mut d, self);
        let mut out = String::new();
        if self.neg {
            out.push('-');
        }
        let prec = d.mant.len() as i64;
        let exp = d.exp - 1;
        if !self.is_int() && !(-4..6).contains(&exp) {
            // %e with prec - 1 digits after the point
            out.push(d.mant.first().map_or('0', |&c| char::from(c)));
            if prec > 1 {
                out.push('.');
                out.extend(d.mant[1..].iter().map(|&c| char::from(c)));
            }
            let e = if d.mant.is_empty() { 0 } else { exp };
            out.push('e');
            out.push(if e < 0 { '-' } else { '+' });
            out.push_str(&format!("{:02}", e.unsigned_abs()));
            return out;
        }
        // %f with max(prec - d.exp, 0) fraction digits (none for an integer: its shortest
        // digits lie before the point)
        let frac = (prec - d.exp).max(0);
        if d.exp > 0 {
            for i in 0..d.exp {
                out.push(char::from(d.at(i)));
            }
        } else {
            out.push('0');
        }
        if frac > 0 {
            out.push('.');
            for i in 0..frac {
                out.push(char::from(d.at(d.exp + i)));
            }
        }
        out
    }
}

/// `5^n` as Go's `Float.pow5` computes it at precision `prec`.
fn pow5(n: u64, prec: u32) -> Float {
    const EXACT: u64 = 27; // 5^27 is the largest power of five below 2^63
    if n <= EXACT {
        return Float::new(false, BigUint::from(5u8).pow(n as u32), 0, prec);
    }
    let mut z = Float::new(false, BigUint::from(5u8).pow(EXACT as u32), 0, prec);
    let mut f = Float::new(false, BigUint::from(5u8), 0, prec + 64);
    let mut n = n - EXACT;
    while n > 0 {
        if n & 1 != 0 {
            z = z.mul_prec(&f, prec);
        }
        f = f.mul_prec(&f, prec + 64);
        n >>= 1;
    }
    z
}

/// Go's `math/big` decimal: the value `0.mant × 10^exp`, `mant` ASCII digits without
/// trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    mant: Vec<u8>,
    exp: i64,
}

impl Decimal {
    /// The exact decimal value of `m × 2^shift`.
    fn of(m: &BigUint, shift: i64) -> Decimal {
        if m.is_zero() {
            return Decimal {
                mant: Vec::new(),
                exp: 0,
            };
        }
        let (digits, scale) = if shift >= 0 {
            ((m << shift as u64).to_str_radix(10), 0)
        } else {
            let k = shift.unsigned_abs();
            (
                (m * BigUint::from(5u8).pow(k as u32)).to_str_radix(10),
                k as i64,
            )
        };
        let mut d = Decimal {
            exp: digits.len() as i64 - scale,
            mant: digits.into_bytes(),
        };
        d.trim();
        d
    }

    fn at(&self, i: i64) -> u8 {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.mant.get(i).copied())
            .unwrap_or(b'0')
    }

    fn trim(&mut self) {
        while self.mant.last() == Some(&b'0') {
            self.mant.pop();
        }
        if self.mant.is_empty() {
            self.exp = 0;
        }
    }

    fn should_round_up(&self, n: usize) -> bool {
        if self.mant[n] == b'5' && n + 1 == self.mant.len() {
            return n > 0 && (self.mant[n - 1] - b'0') & 1 != 0;
        }
        self.mant[n] >= b'5'
    }

    fn round(&mut self, n: usize) {
        if n >= self.mant.len() {
            return;
        }
        if self.should_round_up(n) {
            self.round_up(n);
        } else {
            self.round_down(n);
        }
    }

    fn round_up(&mut self, mut n: usize) {
        if n >= self.mant.len() {
            return;
        }
        while n > 0 && self.mant[n - 1] >= b'9' {
            n -= 1;
        }
        if n == 0 {
            self.mant.truncate(1);
            self.mant[0] = b'1';
            self.exp += 1;
            return;
        }
        self.mant[n - 1] += 1;
        self.mant.truncate(n);
    }

    fn round_down(&mut self, n: usize) {
        if n >= self.mant.len() {
            return;
        }
        self.mant.truncate(n);
        self.trim();
    }
}

/// Go's `roundShortest`: the fewest digits of `d` (the exact value of `x`) that still lie
/// within half an ulp of `x` at its precision.
fn round_shortest(d: &mut Decimal, x: &Float) {
    if d.mant.is_empty() {
        return;
    }
    // mant with prec + 1 bits, so that its lsb is half an ulp
    let bits = x.mant.bits() as i64;
    let s = bits - (i64::from(x.prec) + 1);
    let mant = if s < 0 {
        &x.mant << s.unsigned_abs()
    } else {
        &x.mant >> s as u64
    };
    let exp = x.exp + s;
    let lower = Decimal::of(&(&mant - 1u8), exp);
    let upper = Decimal::of(&(&mant + 1u8), exp);
    let inclusive = !mant.bit(1);
    for i in 0..d.mant.len() {
        let m = d.mant[i];
        let l = lower.at(i as i64);
        let u = upper.at(i as i64);
        let okdown = l != m || inclusive && i + 1 == lower.mant.len();
        let okup = m != u && (inclusive || m + 1 < u || i + 1 < upper.mant.len());
        match (okdown, okup) {
            (true, true) => return d.round(i + 1),
            (true, false) => return d.round_down(i + 1),
            (false, true) => return d.round_up(i + 1),
            (false, false) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(a: &str, f: fn(&Float, &Float) -> Float, b: &str) -> String {
        f(&Float::parse(a).unwrap(), &Float::parse(b).unwrap()).text()
    }

    /// Values recorded from OPA 0.60 and 1.9 with `json.marshal(a op b)`.
    #[test]
    fn matches_go_on_known_values() {
        assert_eq!(op("0.1", Float::add, "0.2"), "0.3");
        assert_eq!(
            Float::parse("1")
                .unwrap()
                .quo(&Float::parse("3").unwrap())
                .unwrap()
                .text(),
            "0.33333333333333333334"
        );
        assert_eq!(
            op("9007199254740993", Float::add, "0.5"),
            "9.0071992547409935e+15"
        );
        assert_eq!(op("2.5", Float::mul, "400000"), "1000000");
        assert_eq!(op("2.5", Float::mul, "2"), "5");
        assert_eq!(
            op("1e300", Float::mul, "17"),
            format!("17{}", "0".repeat(300))
        );
        assert_eq!(op("0.5", Float::mul, "3e6"), "1500000");
        assert_eq!(op("0.1", Float::sub, "0.1"), "0");
        assert_eq!(op("-1.5", Float::add, "0.25"), "-1.25");
        assert_eq!(op("0.00001", Float::mul, "1"), "1e-05");
        assert_eq!(op("0.0001", Float::mul, "1"), "0.0001");
    }

    /// A double's text is the one clients send (Python's `repr` of each value).
    #[test]
    fn shortest_text_of_a_double_is_gos() {
        let text = |f: f64| Float::shortest_of(f).unwrap();
        assert_eq!(text(96064706328052.62), "0.9606470632805262e14");
        assert_eq!(text(-4.2889963710749357e17), "-4.2889963710749357e17");
        assert_eq!(text(0.1), "1e-1");
        assert_eq!(text(5e-324), "5e-324");
        for f in [
            9007199254740992.0,
            1e23,
            f64::MAX,
            f64::MIN_POSITIVE,
            2f64.powi(-1022),
        ] {
            assert_eq!(text(f).parse::<f64>(), Ok(f), "{f:e}");
        }
    }

    #[test]
    fn rounding_is_half_to_even() {
        // 2^64 + 1 is halfway between 2^64 and 2^64 + 2 at 64 bits: to even (2^64).
        let x = Float::new(false, (BigUint::one() << 64u8) + 1u8, 0, 64);
        assert_eq!(x, Float::new(false, BigUint::one(), 64, 64));
        let y = Float::new(false, (BigUint::one() << 64u8) + 3u8, 0, 64);
        assert_eq!(y, Float::new(false, (BigUint::one() << 63u8) + 2u8, 1, 64));
    }
}
