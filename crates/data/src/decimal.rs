//! Plain decimals (`-123.4567`), the shape of nearly every price and volume in market data files,
//! parsed without the general float parser: digits are gathered into an integer and divided once by
//! a power of ten. When the integer is below 2^53 and the power at most 10^22, both are exact
//! doubles and IEEE division rounds once, so the result is the correctly rounded value — the same
//! bits as `str::parse::<f64>` (Clinger's fast path, which the standard parser also takes first).
//! Anything else (exponents, more digits, `inf`, whitespace, errors) goes to `str::parse`.

/// Exact powers of ten as doubles: 10^0 ..= 10^22 (10^23 is not representable exactly).
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// Integers up to 2^53 are exact doubles.
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// The value of a plain decimal (optional sign, digits, optional `.` and digits, at least one digit),
/// or None when `field` has any other shape or is out of the exact range; the caller then parses it
/// the general way.
#[inline]
pub(crate) fn parse_plain_decimal(field: &[u8]) -> Option<f64> {
    let (negative, digits) = match field.first()? {
        b'-' => (true, &field[1..]),
        b'+' => (false, &field[1..]),
        _ => (false, field),
    };
    // 19 digits always fit a u64 (10^19 - 1 < 2^64); longer numbers take the general path.
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut fraction_digits: Option<usize> = None;
    let mut seen_digits = 0usize;
    for (k, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                seen_digits += 1;
            }
            b'.' if fraction_digits.is_none() => fraction_digits = Some(digits.len() - k - 1),
            _ => return None,
        }
    }
    if seen_digits == 0 || seen_digits > 19 || mantissa > MAX_EXACT_INTEGER {
        return None;
    }
    let scale = *POWERS_OF_TEN.get(fraction_digits.unwrap_or(0))?;
    let magnitude = mantissa as f64 / scale;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agrees(text: &str) {
        let expected: Option<f64> = text.parse().ok();
        // None leaves the value to the general parser, which needs no check here.
        if let Some(v) = parse_plain_decimal(text.as_bytes()) {
            let e = expected.unwrap_or_else(|| panic!("{text:?}: fast path accepted what str::parse refuses"));
            assert_eq!(v.to_bits(), e.to_bits(), "{text:?}: {v:e} vs str::parse {e:e}");
        }
    }

    #[test]
    fn equals_the_standard_parser_bit_for_bit_on_edge_cases() {
        for text in [
            "0",
            "-0",
            "+0",
            "0.0",
            "-0.0",
            "1",
            "-1",
            "1.",
            ".5",
            "-.5",
            "0.1",
            "0.2",
            "0.3",
            "2.675",
            "1.005",
            "123.4567",
            "0.00001234",
            "9007199254740992",
            "9007199254740993",
            "900719925474099.3",
            "1234567890123456789",
            "12345678901234567890",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "4.35",
            "1e5",
            "1E-3",
            "inf",
            "NaN",
            "",
            "-",
            "+",
            ".",
            "..",
            "1.2.3",
            "1,5",
            " 1.5",
            "1.5 ",
            "0x10",
            "99999999999999999999",
            "00000000000000000001.5",
        ] {
            agrees(text);
        }
        assert_eq!(parse_plain_decimal(b"-0.0").map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!(parse_plain_decimal(b"1e5"), None);
        assert_eq!(parse_plain_decimal(b" 1.5"), None);
        assert_eq!(parse_plain_decimal(b"."), None);
        assert_eq!(parse_plain_decimal(b"9007199254740993"), None, "above 2^53 goes the general way");
        assert_eq!(parse_plain_decimal(b"4.35"), Some(4.35));
    }

    #[test]
    fn equals_the_standard_parser_bit_for_bit_on_a_million_prices() {
        // A deterministic spread of the shapes prices and volumes take: 1 to 19 digits, 0 to 19 of
        // them after the point, with and without sign and leading zeros.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..1_000_000 {
            let digits = 1 + (next() % 19) as usize;
            let mut text = String::new();
            if next() % 4 == 0 {
                text.push('-');
            }
            let point = (next() % (digits as u64 + 1)) as usize;
            for k in 0..digits {
                if k == point && k > 0 {
                    text.push('.');
                }
                text.push(char::from(b'0' + (next() % 10) as u8));
            }
            agrees(&text);
            accepted += usize::from(parse_plain_decimal(text.as_bytes()).is_some());
        }
        assert!(accepted > 600_000, "the fast path took only {accepted} of 1,000,000");
    }
}
