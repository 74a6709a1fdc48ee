//! The channel classifier (`crate::channels`, ANALYSES.md "channels") as a
//! ClickHouse expression over `props`: the same normalisation, host
//! parsing, lookup order (exact, without `www.`/`m.`, registrable domain,
//! its first label) and rule order.

use super::heatmap::string_form;
use super::quote;
use crate::channels::{
    Class, AFFILIATE, DISPLAY, EMAIL, PAID, PUSH, SECOND_LEVEL, SOCIAL_MEDIUM, TABLE,
};
use crate::error::Result;

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| quote(s))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A property's value lower-cased, NULL when absent, empty or "null".
fn norm(name: &str) -> Result<String> {
    let s = string_form(name, "breakdown")?;
    Ok(format!("nullIf(nullIf(lowerUTF8({s}), ''), 'null')"))
}

/// The host of a URL (`crate::channels::host_of`), NULL without one.
fn host(url: &str) -> String {
    let rest = format!(
        "if(match({url}, '^[a-z][a-z0-9+.-]*:'), substring({url}, position({url}, ':') + 1), {url})"
    );
    let auth = format!("extract(substring({rest}, 3), '^[^/?#]*')");
    let h = format!("arrayElement(splitByChar('@', {auth}), -1)");
    format!(
        "if(startsWith({rest}, '//'), nullIf(if(startsWith({h}, '['), extract({h}, '^\\\\[([^\\\\]]*)'), \
         extract({h}, '^[^:]*')), ''), NULL)"
    )
}

/// The class (1 search, 2 social, 3 video, 4 shopping, 0 none) of the
/// String expression `v` ('' for none).
fn class(v: &str) -> String {
    let mut names = Vec::new();
    let mut codes = Vec::new();
    for (c, list) in TABLE {
        let code = match c {
            Class::Search => 1,
            Class::Social => 2,
            Class::Video => 3,
            Class::Shopping => 4,
        };
        for n in *list {
            names.push(quote(n));
            codes.push(code.to_string());
        }
    }
    let tr = |x: &str| {
        format!(
            "transform({x}, [{}], [{}], 0)",
            names.join(", "),
            codes.join(", ")
        )
    };
    // The registrable domain: the last two labels, or three under a
    // second-level name of a two-letter top-level domain.
    let reg = format!(
        "arrayMap(l -> if(length(l) >= 3 AND length(l[-1]) = 2 AND l[-2] IN ({sl}), \
         arrayStringConcat(arraySlice(l, -3), '.'), if(length(l) >= 3, arrayStringConcat(arraySlice(l, -2), '.'), v)), \
         [splitByChar('.', v)])[1]",
        sl = list(&SECOND_LEVEL)
    );
    format!(
        "arrayMap(v -> multiIf(v = '', 0, {exact} != 0, {exact}, startsWith(v, 'www.') AND {www} != 0, {www}, \
         startsWith(v, 'm.') AND {m} != 0, {m}, position(v, '.') = 0, 0, {r} != 0, {r}, {first}), [{v}])[1]",
        exact = tr("v"),
        www = tr("substring(v, 5)"),
        m = tr("substring(v, 3)"),
        r = tr(&reg),
        first = tr(&format!("splitByChar('.', {reg})[1]")),
    )
}

/// The channel name of the current row.
pub(super) fn channel() -> Result<String> {
    let source = norm("utm_source")?;
    let medium = norm("utm_medium")?;
    let gclid = norm("gclid")?;
    let referring = norm("$referring_domain")?;
    let referrer = norm("$referrer")?;
    let domain = format!(
        "nullIf(ifNull({referring}, {}), '$direct')",
        host(&format!("ifNull({referrer}, '')"))
    );
    let pick = |kind: &str| {
        format!(
            "multiIf(sc = 1 OR dc = 1, '{kind} Search', sc = 2 OR dc = 2, '{kind} Social', \
             sc = 3 OR dc = 3, '{kind} Video', sc = 4 OR dc = 4, '{kind} Shopping', '')"
        )
    };
    let body = format!(
        "multiIf(ifNull(me IN ({paid}), 0) OR ifNull(startsWith(me, 'paid'), 0) OR gc IS NOT NULL, \
         if({paid_pick} = '', 'Paid Other', {paid_pick}), \
         so IS NULL AND me IS NULL AND dom IS NULL, 'Direct', \
         ifNull(me IN ({email}), 0), 'Email', ifNull(me IN ({display}), 0), 'Display', \
         ifNull(me IN ({affiliate}), 0), 'Affiliate', ifNull(me IN ({push}), 0), 'Push', \
         {organic} != '', {organic}, ifNull(me IN ({social}), 0), 'Organic Social', \
         dom IS NOT NULL OR ifNull(me = 'referral', 0), 'Referral', 'Unassigned')",
        paid = list(&PAID),
        paid_pick = pick("Paid"),
        email = list(&EMAIL),
        display = list(&DISPLAY),
        affiliate = list(&AFFILIATE),
        push = list(&PUSH),
        organic = pick("Organic"),
        social = list(&SOCIAL_MEDIUM),
    );
    // Name the inputs once (`arrayMap(x -> …, [e])[1]`).
    Ok(format!(
        "arrayMap((so, me, gc, dom) -> arrayMap((sc, dc) -> {body}, [{sclass}], [{dclass}])[1], \
         [{source}], [{medium}], [{gclid}], [{domain}])[1]",
        sclass = class("ifNull(so, '')"),
        dclass = class("ifNull(dom, '')"),
    ))
}
