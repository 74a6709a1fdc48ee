//! Splitting a JSON array into its top-level elements without parsing them.
//!
//! Each element is then parsed (and held) on its own: a 16 MiB array is
//! never one JSON tree in memory, and a damaged element (bad syntax, a byte
//! that is not UTF-8) rejects only itself. The scan follows strings and
//! escapes, so commas and brackets inside strings do not split; for valid
//! JSON it finds exactly the elements a JSON parser would.

/// JSON whitespace.
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Scans one element from `from`: the position of the `,` or `]` that ends
/// it outside any string or nesting, and that byte; `(len, None)` when the
/// input ends first.
fn element_end(input: &[u8], from: usize) -> (usize, Option<u8>) {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    for (i, &b) in input.iter().enumerate().skip(from) {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => depth -= 1,
            b',' | b']' if depth == 0 => return (i, Some(b)),
            _ => {}
        }
    }
    (input.len(), None)
}

fn non_empty(element: &[u8]) -> Result<&[u8], String> {
    if element.is_empty() {
        Err("empty array element (two commas in a row, or a comma before ])".into())
    } else {
        Ok(element)
    }
}

/// Where a piece of a JSON array lies in the whole, when a bulk loader has
/// cut the array at top-level commas ([`array_cut`]) and parses the pieces
/// on their own. The whole array is the default: neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArrayPart {
    /// The piece starts right after a cut comma, inside the array (no `[`).
    pub continued: bool,
    /// The piece ends right before a cut comma (no `]`): its last element
    /// is whole.
    pub cut: bool,
}

/// Calls `each` with every element of the array (or piece of one, see
/// [`ArrayPart`]) that `input` holds, numbered from 0, in order; unless
/// `part.continued`, the first non-blank byte must be `[`. Damage around
/// the elements comes as errors in the same sequence: an empty element,
/// text after the closing `]`, or an array that is not closed (its last
/// element is then rejected, as it may be cut short).
pub(super) fn split(
    input: &[u8],
    part: ArrayPart,
    mut each: impl FnMut(usize, Result<&[u8], String>),
) {
    let mut pos = 0;
    if !part.continued {
        let Some(open) = input.iter().position(|&b| !is_ws(b)) else {
            return;
        };
        pos = open + 1;
    }
    let mut index = 0;
    loop {
        let (end, delim) = element_end(input, pos);
        let element = trim(&input[pos..end]);
        match delim {
            Some(b',') => {
                each(index, non_empty(element));
                index += 1;
                pos = end + 1;
            }
            Some(_) => {
                // `[]` is empty; `,]` (here or before the cut) an empty element.
                if index > 0 || part.continued || !element.is_empty() {
                    each(index, non_empty(element));
                    index += 1;
                }
                if !trim(&input[end + 1..]).is_empty() {
                    each(index, Err("text after the closing ] of the array".into()));
                }
                return;
            }
            None if part.cut => {
                each(index, non_empty(element));
                return;
            }
            None => {
                let message = if element.is_empty() {
                    "the array ends without ]"
                } else {
                    "the array ends without ], so this last element may be cut short"
                };
                each(index, Err(message.into()));
                return;
            }
        }
    }
}

/// Where a bulk loader may cut a JSON array's text so that both sides hold
/// whole elements: the position of the last top-level comma in `buf`, and
/// how many elements lie before it. `opened` says whether `buf` starts
/// inside the array (right after an earlier cut) rather than before its `[`.
/// `None` when `buf` holds no such comma.
pub fn array_cut(buf: &[u8], opened: bool) -> Option<(usize, usize)> {
    let mut pos = 0;
    if !opened {
        let open = buf.iter().position(|&b| !is_ws(b))?;
        if buf[open] != b'[' {
            return None;
        }
        pos = open + 1;
    }
    let mut last = None;
    let mut elements = 0;
    loop {
        match element_end(buf, pos) {
            (end, Some(b',')) => {
                elements += 1;
                last = Some((end, elements));
                pos = end + 1;
            }
            _ => return last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(input: &str) -> Vec<Result<String, String>> {
        pieces_of(input, ArrayPart::default())
    }

    fn pieces_of(input: &str, part: ArrayPart) -> Vec<Result<String, String>> {
        let mut out = Vec::new();
        split(input.as_bytes(), part, |i, e| {
            assert_eq!(i, out.len());
            out.push(e.map(|b| String::from_utf8_lossy(b).into_owned()));
        });
        out
    }

    #[test]
    fn elements_follow_strings_and_nesting() {
        let got = pieces(r#" [ {"a":"x,]\"}"}, [1,[2]] ,"s" ,3 ] "#);
        let want: Vec<Result<String, String>> = vec![
            Ok(r#"{"a":"x,]\"}"}"#.into()),
            Ok("[1,[2]]".into()),
            Ok(r#""s""#.into()),
            Ok("3".into()),
        ];
        assert_eq!(got, want);
        assert!(pieces("[]").is_empty());
        assert!(pieces(" [ \n ] ").is_empty());
    }

    #[test]
    fn damage_is_per_element() {
        let got = pieces("[1,,2,]");
        assert_eq!(got.len(), 4);
        assert!(got[0].is_ok() && got[2].is_ok());
        assert!(got[1].as_ref().unwrap_err().contains("empty array element"));
        assert!(got[3].as_ref().unwrap_err().contains("empty array element"));
        let got = pieces("[1,2] x");
        assert_eq!(got.len(), 3);
        assert!(got[2].as_ref().unwrap_err().contains("after the closing ]"));
        let got = pieces(r#"[1,{"a":"#);
        assert_eq!(got.len(), 2);
        assert!(got[1].as_ref().unwrap_err().contains("cut short"));
        assert_eq!(pieces("[").len(), 1);
    }

    #[test]
    fn pieces_cut_at_commas_hold_what_the_whole_holds() {
        for whole in [
            "[,1]",
            "[1,]",
            "[;,]",
            "[1,,2]",
            "[1,2",
            "[1,2] x",
            "[ {\"a\":[1,2]} , \"s,\" ]",
        ] {
            let want = pieces(whole);
            let mut cut = array_cut(whole.as_bytes(), false);
            while let Some((at, n)) = cut {
                let head = pieces_of(
                    &whole[..at],
                    ArrayPart {
                        continued: false,
                        cut: true,
                    },
                );
                let tail = pieces_of(
                    &whole[at + 1..],
                    ArrayPart {
                        continued: true,
                        cut: false,
                    },
                );
                assert_eq!(head.len(), n, "{whole} at {at}");
                let got: Vec<_> = head.into_iter().chain(tail).collect();
                assert_eq!(got, want, "{whole} cut at {at}");
                cut = array_cut(&whole.as_bytes()[..at], false);
            }
        }
    }

    #[test]
    fn cuts_fall_after_whole_elements() {
        let buf = br#"[{"a":","},[1,2],3,{"b"#;
        let (cut, n) = array_cut(buf, false).unwrap();
        assert_eq!((&buf[..cut], n), (&br#"[{"a":","},[1,2],3"#[..], 3));
        let (cut, n) = array_cut(br#""x",{"y":1},"#, true).unwrap();
        assert_eq!((cut, n), (11, 2));
        assert_eq!(array_cut(br#"[{"a":1"#, false), None);
        assert_eq!(array_cut(b"{\"a\":1},", false), None);
    }
}
