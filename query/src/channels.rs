//! 渠道分类 — channel classification: which marketing channel brought an
//! event, from its `utm_source`, `utm_medium`, `gclid` and referring
//! domain (`$referring_domain`, else the host of `$referrer`), by the rule
//! order and the domain tables of ANALYSES.md ("channels"). Pure and
//! table-driven; used as `{"channel": true}` in breakdowns and as
//! attribution's `by`.

use std::borrow::Cow;
use std::sync::OnceLock;

use footprint_storage::{UserRows, Value};
use rustc_hash::FxHashMap;

use crate::exec::Ctx;

/// A channel (GA4's default channel group, with the Chinese sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Paid medium or `gclid`, search source.
    PaidSearch,
    /// Paid medium, social source.
    PaidSocial,
    /// Paid medium, video source.
    PaidVideo,
    /// Paid medium, shopping source.
    PaidShopping,
    /// Paid medium, other source.
    PaidOther,
    /// No source, medium or referring domain.
    Direct,
    /// Email medium.
    Email,
    /// Display medium.
    Display,
    /// Affiliate medium.
    Affiliate,
    /// Push medium.
    Push,
    /// A search engine, unpaid.
    OrganicSearch,
    /// A social network (or a social medium), unpaid.
    OrganicSocial,
    /// A video site, unpaid.
    OrganicVideo,
    /// A shopping site, unpaid.
    OrganicShopping,
    /// Another referring domain, or medium `referral`.
    Referral,
    /// None of the above.
    Unassigned,
}

/// Every channel, in declaration order.
pub const ALL: [Channel; 16] = [
    Channel::PaidSearch,
    Channel::PaidSocial,
    Channel::PaidVideo,
    Channel::PaidShopping,
    Channel::PaidOther,
    Channel::Direct,
    Channel::Email,
    Channel::Display,
    Channel::Affiliate,
    Channel::Push,
    Channel::OrganicSearch,
    Channel::OrganicSocial,
    Channel::OrganicVideo,
    Channel::OrganicShopping,
    Channel::Referral,
    Channel::Unassigned,
];

impl Channel {
    /// The channel's name as results print it.
    pub fn name(self) -> &'static str {
        match self {
            Channel::PaidSearch => "Paid Search",
            Channel::PaidSocial => "Paid Social",
            Channel::PaidVideo => "Paid Video",
            Channel::PaidShopping => "Paid Shopping",
            Channel::PaidOther => "Paid Other",
            Channel::Direct => "Direct",
            Channel::Email => "Email",
            Channel::Display => "Display",
            Channel::Affiliate => "Affiliate",
            Channel::Push => "Push",
            Channel::OrganicSearch => "Organic Search",
            Channel::OrganicSocial => "Organic Social",
            Channel::OrganicVideo => "Organic Video",
            Channel::OrganicShopping => "Organic Shopping",
            Channel::Referral => "Referral",
            Channel::Unassigned => "Unassigned",
        }
    }

    /// The name as a stored value (for breakdown keys), shared by every query.
    pub fn value(self) -> &'static Value {
        static VALUES: OnceLock<Vec<Value>> = OnceLock::new();
        let all = VALUES.get_or_init(|| ALL.iter().map(|c| Value::Str(c.name().into())).collect());
        &all[self as usize]
    }
}

/// The class of a source or referring domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A search engine.
    Search,
    /// A social network.
    Social,
    /// A video site.
    Video,
    /// A shopping site.
    Shopping,
}

/// The class table of ANALYSES.md: names (`baidu`) and domains (`so.com`).
pub const TABLE: &[(Class, &[&str])] = &[
    (
        Class::Search,
        &[
            "google",
            "bing",
            "baidu",
            "sogou",
            "so.com",
            "360.cn",
            "sm.cn",
            "yandex",
            "duckduckgo",
            "yahoo",
            "naver",
            "ecosia",
            "doubao.com",
            "kimi.com",
            "deepseek.com",
        ],
    ),
    (
        Class::Social,
        &[
            "wechat",
            "weixin",
            "weixin.qq.com",
            "wx.qq.com",
            "qzone.qq.com",
            "weibo",
            "weibo.com",
            "t.cn",
            "xiaohongshu.com",
            "xhslink.com",
            "douban.com",
            "zhihu",
            "zhihu.com",
            "douyin",
            "douyin.com",
            "toutiao",
            "toutiao.com",
            "tieba.baidu.com",
            "facebook",
            "facebook.com",
            "instagram.com",
            "x.com",
            "twitter.com",
            "t.co",
            "linkedin.com",
            "reddit.com",
            "tiktok.com",
        ],
    ),
    (
        Class::Video,
        &[
            "bilibili.com",
            "b23.tv",
            "youku.com",
            "iqiyi.com",
            "ixigua.com",
            "kuaishou.com",
            "youtube.com",
            "vimeo.com",
        ],
    ),
    (
        Class::Shopping,
        &[
            "taobao.com",
            "tmall.com",
            "jd.com",
            "1688.com",
            "pinduoduo.com",
            "amazon.com",
        ],
    ),
];

fn table() -> &'static FxHashMap<&'static str, Class> {
    static MAP: OnceLock<FxHashMap<&'static str, Class>> = OnceLock::new();
    MAP.get_or_init(|| {
        TABLE
            .iter()
            .flat_map(|(c, names)| names.iter().map(move |n| (*n, *c)))
            .collect()
    })
}

/// Second-level labels that make a registrable domain three labels long
/// under a two-letter top-level domain (`sina.com.cn`).
pub(crate) const SECOND_LEVEL: [&str; 7] = ["com", "net", "org", "gov", "edu", "ac", "co"];

/// The registrable domain of `d`: its last two labels, or three under a
/// [`SECOND_LEVEL`] label of a two-letter top-level domain.
pub fn registrable(d: &str) -> &str {
    // The start of the last `k` labels (0 when there are fewer).
    let from_end = |k: usize| -> usize {
        let mut end = d.len();
        for _ in 0..k {
            match d[..end].rfind('.') {
                Some(i) => end = i,
                None => return 0,
            }
        }
        end + 1
    };
    let two = from_end(2);
    let tld = &d[from_end(1)..];
    let second = if two == 0 {
        ""
    } else {
        &d[two..d.len() - tld.len() - 1]
    };
    if two > 0 && tld.len() == 2 && SECOND_LEVEL.contains(&second) {
        &d[from_end(3)..]
    } else {
        &d[two..]
    }
}

/// The class of a lower-cased source or domain: looked up exactly, then
/// without a leading `www.` or `m.`, then by its registrable domain, then
/// by that domain's first label as a name (`www.google.com.hk` → `google`).
pub fn class_of(v: &str) -> Option<Class> {
    let t = table();
    if let Some(&c) = t.get(v) {
        return Some(c);
    }
    for pre in ["www.", "m."] {
        if let Some(c) = v.strip_prefix(pre).and_then(|s| t.get(s)) {
            return Some(*c);
        }
    }
    if v.contains('.') {
        let r = registrable(v);
        if let Some(&c) = t.get(r) {
            return Some(c);
        }
        let name = r.split('.').next().unwrap_or(r);
        return t.get(name).copied();
    }
    None
}

/// The string form of a property value: strings as they are, numbers as
/// JSON prints them, booleans `true`/`false` (NOTES.md §2).
pub fn string_form(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Str(s) => Cow::Borrowed(s),
        Value::Int(i) => Cow::Owned(i.to_string()),
        Value::Float(_) => Cow::Owned(v.to_json().to_string()),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
    }
}

/// A value lower-cased, `None` when absent, empty or `"null"`.
fn norm(v: Option<&Value>) -> Option<Cow<'_, str>> {
    let s = string_form(v?);
    let s = if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        Cow::Owned(s.to_lowercase())
    } else {
        s
    };
    (!s.is_empty() && s != "null").then_some(s)
}

/// The host of a URL, lower-cased, without user info or port (as Python's
/// `urlsplit(url).hostname`): `None` without a `//` authority.
pub fn host_of(url: &str) -> Option<String> {
    let rest = match url.find(':') {
        Some(i)
            if i > 0
                && url[..i].starts_with(|c: char| c.is_ascii_alphabetic())
                && url[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            &url[i + 1..]
        }
        _ => url,
    };
    let auth = rest.strip_prefix("//")?;
    let auth = &auth[..auth.find(['/', '?', '#']).unwrap_or(auth.len())];
    let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        &v6[..v6.find(']').unwrap_or(v6.len())]
    } else {
        &host[..host.find(':').unwrap_or(host.len())]
    };
    (!host.is_empty()).then(|| host.to_lowercase())
}

/// The inputs of [`classify`]: one event's properties.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    /// `utm_source`.
    pub source: Option<&'a Value>,
    /// `utm_medium`.
    pub medium: Option<&'a Value>,
    /// `gclid`.
    pub gclid: Option<&'a Value>,
    /// `$referring_domain`.
    pub referring_domain: Option<&'a Value>,
    /// `$referrer` (a URL).
    pub referrer: Option<&'a Value>,
}

pub(crate) const PAID: [&str; 6] = ["cpc", "ppc", "cpm", "cpv", "cpa", "retargeting"];
pub(crate) const EMAIL: [&str; 4] = ["email", "e-mail", "e_mail", "edm"];
pub(crate) const DISPLAY: [&str; 4] = ["display", "banner", "expandable", "interstitial"];
pub(crate) const AFFILIATE: [&str; 3] = ["affiliate", "affiliates", "partnership"];
pub(crate) const PUSH: [&str; 4] = ["push", "mobile", "notification", "sms"];
pub(crate) const SOCIAL_MEDIUM: [&str; 4] = ["social", "sm", "social-network", "social-media"];

/// Classifies one event (the rules of ANALYSES.md, first match wins).
/// `utm_campaign` is read by no rule.
pub fn classify(p: &Inputs<'_>) -> Channel {
    let source = norm(p.source);
    let medium = norm(p.medium);
    let mut domain: Option<Cow<'_, str>> = norm(p.referring_domain);
    if domain.is_none() {
        domain = norm(p.referrer).and_then(|r| host_of(&r)).map(Cow::Owned);
    }
    if domain.as_deref() == Some("$direct") {
        domain = None;
    }
    let medium = medium.as_deref();
    let classes = [
        source.as_deref().and_then(class_of),
        domain.as_deref().and_then(class_of),
    ];
    let has = |c: Class| classes.contains(&Some(c));
    let is = |list: &[&str]| medium.is_some_and(|m| list.contains(&m));
    let pick = |search, social, video, shopping| {
        [
            (Class::Search, search),
            (Class::Social, social),
            (Class::Video, video),
            (Class::Shopping, shopping),
        ]
        .into_iter()
        .find(|(c, _)| has(*c))
        .map(|(_, ch)| ch)
    };
    if is(&PAID) || medium.is_some_and(|m| m.starts_with("paid")) || norm(p.gclid).is_some() {
        return pick(
            Channel::PaidSearch,
            Channel::PaidSocial,
            Channel::PaidVideo,
            Channel::PaidShopping,
        )
        .unwrap_or(Channel::PaidOther);
    }
    if source.is_none() && medium.is_none() && domain.is_none() {
        return Channel::Direct;
    }
    if is(&EMAIL) {
        return Channel::Email;
    }
    if is(&DISPLAY) {
        return Channel::Display;
    }
    if is(&AFFILIATE) {
        return Channel::Affiliate;
    }
    if is(&PUSH) {
        return Channel::Push;
    }
    if let Some(c) = pick(
        Channel::OrganicSearch,
        Channel::OrganicSocial,
        Channel::OrganicVideo,
        Channel::OrganicShopping,
    ) {
        return c;
    }
    if is(&SOCIAL_MEDIUM) {
        return Channel::OrganicSocial;
    }
    if domain.is_some() || medium == Some("referral") {
        return Channel::Referral;
    }
    Channel::Unassigned
}

/// The scan slots of the properties [`classify`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Slots {
    source: Option<usize>,
    medium: Option<usize>,
    gclid: Option<usize>,
    referring_domain: Option<usize>,
    referrer: Option<usize>,
}

impl Slots {
    /// Registers the properties with the query (quietly: an event stream
    /// without, say, `gclid` is normal).
    pub fn register(ctx: &mut Ctx<'_>) -> Slots {
        Slots {
            source: ctx.slot_if_stored("utm_source"),
            medium: ctx.slot_if_stored("utm_medium"),
            gclid: ctx.slot_if_stored("gclid"),
            referring_domain: ctx.slot_if_stored("$referring_domain"),
            referrer: ctx.slot_if_stored("$referrer"),
        }
    }

    /// The channel of event `row` of `u`.
    pub fn channel(&self, u: &UserRows<'_>, row: usize) -> Channel {
        let get = |s: Option<usize>| s.and_then(|k| u.prop(k, row));
        classify(&Inputs {
            source: get(self.source),
            medium: get(self.medium),
            gclid: get(self.gclid),
            referring_domain: get(self.referring_domain),
            referrer: get(self.referrer),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    /// Classifies from (source, medium, gclid, referring domain, referrer).
    fn ch(
        source: Option<&str>,
        medium: Option<&str>,
        gclid: Option<&str>,
        domain: Option<&str>,
        referrer: Option<&str>,
    ) -> &'static str {
        let v = |x: Option<&str>| x.map(s);
        let (a, b, c, d, e) = (v(source), v(medium), v(gclid), v(domain), v(referrer));
        classify(&Inputs {
            source: a.as_ref(),
            medium: b.as_ref(),
            gclid: c.as_ref(),
            referring_domain: d.as_ref(),
            referrer: e.as_ref(),
        })
        .name()
    }

    fn src(x: &str) -> &'static str {
        ch(Some(x), None, None, None, None)
    }

    #[test]
    fn every_table_row_classifies_as_its_class() {
        for (class, names) in TABLE {
            for n in *names {
                assert_eq!(class_of(n), Some(*class), "{n}");
                let organic = match class {
                    Class::Search => "Organic Search",
                    Class::Social => "Organic Social",
                    Class::Video => "Organic Video",
                    Class::Shopping => "Organic Shopping",
                };
                assert_eq!(src(n), organic, "{n} as a source");
                assert_eq!(
                    ch(None, None, None, Some(n), None),
                    organic,
                    "{n} as a referring domain"
                );
                let paid = organic.replace("Organic", "Paid");
                assert_eq!(ch(Some(n), Some("cpc"), None, None, None), paid, "{n}");
            }
        }
    }

    #[test]
    fn lookup_order_exact_prefix_registrable_name() {
        // Exact entries win over the registrable domain.
        assert_eq!(class_of("tieba.baidu.com"), Some(Class::Social));
        assert_eq!(class_of("image.baidu.com"), Some(Class::Search));
        assert_eq!(class_of("www.bilibili.com"), Some(Class::Video));
        assert_eq!(class_of("m.weibo.com"), Some(Class::Social));
        assert_eq!(class_of("www.google.com.hk"), Some(Class::Search));
        assert_eq!(class_of("google.co.uk"), Some(Class::Search));
        assert_eq!(class_of("baidu.com"), Some(Class::Search));
        assert_eq!(class_of("mp.weixin.qq.com"), None);
        assert_eq!(class_of("item.jd.com"), Some(Class::Shopping));
        assert_eq!(class_of("sina.com.cn"), None);
        assert_eq!(class_of("example.com"), None);
        assert_eq!(class_of("newsletter"), None);
        assert_eq!(registrable("a.b.sina.com.cn"), "sina.com.cn");
        assert_eq!(registrable("www.google.com"), "google.com");
        assert_eq!(registrable("localhost"), "localhost");
        assert_eq!(registrable("x.com.cn.example"), "cn.example");
    }

    #[test]
    fn rule_order() {
        // 1. Paid: the mediums, `paid*`, and gclid.
        for m in PAID {
            assert_eq!(ch(Some("baidu"), Some(m), None, None, None), "Paid Search");
        }
        assert_eq!(
            ch(Some("x"), Some("paid_social"), None, None, None),
            "Paid Other"
        );
        assert_eq!(
            ch(None, Some("PaidSocial"), None, Some("weibo.com"), None),
            "Paid Social"
        );
        assert_eq!(
            ch(None, None, Some("abc"), Some("www.google.com"), None),
            "Paid Search"
        );
        assert_eq!(ch(None, None, Some("abc"), None, None), "Paid Other");
        assert_eq!(ch(None, None, Some("null"), None, None), "Direct");
        assert_eq!(ch(None, None, Some(""), None, None), "Direct");
        // 2. Direct: nothing, or `$direct`; a campaign alone is direct.
        assert_eq!(ch(None, None, None, None, None), "Direct");
        assert_eq!(ch(None, None, None, Some("$direct"), None), "Direct");
        assert_eq!(ch(Some("NULL"), Some(""), None, None, None), "Direct");
        // 3-6. Mediums.
        for m in EMAIL {
            assert_eq!(ch(Some("weibo"), Some(m), None, None, None), "Email");
        }
        for m in DISPLAY {
            assert_eq!(ch(None, Some(m), None, None, None), "Display");
        }
        for m in AFFILIATE {
            assert_eq!(ch(None, Some(m), None, None, None), "Affiliate");
        }
        for m in PUSH {
            assert_eq!(ch(None, Some(m), None, None, None), "Push");
        }
        // 7. Classes in the order search, social, video, shopping.
        assert_eq!(
            ch(Some("taobao.com"), None, None, Some("baidu.com"), None),
            "Organic Search"
        );
        assert_eq!(
            ch(Some("WeChat"), Some("organic"), None, None, None),
            "Organic Social"
        );
        // 8. Social mediums.
        for m in SOCIAL_MEDIUM {
            assert_eq!(ch(Some("x"), Some(m), None, None, None), "Organic Social");
        }
        // 9. Referral: a domain, or medium referral.
        assert_eq!(ch(None, None, None, Some("example.com"), None), "Referral");
        assert_eq!(
            ch(Some("x"), Some("referral"), None, None, None),
            "Referral"
        );
        assert_eq!(
            ch(
                None,
                None,
                None,
                None,
                Some("https://Blog.Example.com:8080/a?b")
            ),
            "Referral"
        );
        assert_eq!(
            ch(None, None, None, None, Some("https://www.zhihu.com/q/1")),
            "Organic Social"
        );
        // A referrer without `//` has no host.
        assert_eq!(ch(None, None, None, None, Some("zhihu.com")), "Direct");
        // `$referring_domain` wins over `$referrer`.
        assert_eq!(
            ch(None, None, None, Some("youku.com"), Some("https://jd.com/")),
            "Organic Video"
        );
        // 10. Otherwise.
        assert_eq!(ch(Some("newsletter"), None, None, None, None), "Unassigned");
        assert_eq!(ch(None, Some("organic"), None, None, None), "Unassigned");
    }

    #[test]
    fn string_forms_and_hosts() {
        assert_eq!(string_form(&Value::Int(42)), "42");
        assert_eq!(string_form(&Value::Bool(true)), "true");
        assert_eq!(string_form(&Value::Float(1.5)), "1.5");
        assert_eq!(string_form(&Value::Float(10.0)), "10.0");
        assert_eq!(host_of("http://u:p@A.B.cn:81/x"), Some("a.b.cn".into()));
        assert_eq!(host_of("//cdn.x.com/a"), Some("cdn.x.com".into()));
        assert_eq!(host_of("x.com/a"), None);
        assert_eq!(host_of("https://[::1]:80/"), Some("::1".into()));
        for c in ALL {
            assert_eq!(c.value(), &Value::Str(c.name().into()));
        }
    }
}
