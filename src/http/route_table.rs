//! The route template of a raw path, found before routing (the request span's `route`, see
//! `request_id`) without a pass over actix's route table. actix's `match_pattern` before
//! routing tries the resources in order and runs a regex for each dynamic one; the hottest
//! route (`/v1/experiments/{id}/assign`) is dynamic, so every request paid that pass on top of
//! the router's own. Every template of the route list is literal segments and whole-segment
//! parameters (`{id}`), which a segment-by-segment comparison decides exactly as actix's
//! `[^/]+` does; a list with any other kind of pattern leaves the lookup to actix.
//!
//! The path is split into its segments once, in one pass over its bytes, and compared only with
//! the templates of as many segments, listed apart by their count: a split of the path per
//! template was ~1,800 instructions per request (benches/load/results/preq5-2026-12-01-s10.md),
//! a `str::split` and a length check per template ~800, this ~440 (benches/load/results/
//! preq16-2026-12-01-s16.md).

use std::sync::OnceLock;

use actix_web::{FromRequest, Handler, Responder};

use super::openapi::Routes;

/// Most segments a template of the table may have (the route list's longest has four); a
/// list with a longer one leaves the lookup to actix, and a longer path matches no template.
const MAX_SEGMENTS: usize = 8;

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: any non-empty segment.
    Param,
}

/// The templates of a route list, in mount order (the first that matches wins, as in actix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    templates: Vec<(String, Vec<Segment>)>,
    /// Indices into `templates` by segment count, each list in mount order.
    by_count: [Vec<usize>; MAX_SEGMENTS + 1],
}

impl RouteTable {
    /// The table of `templates`, or `None` when one of them is not literal segments and
    /// whole-segment parameters (a tail match, a custom regex, a parameter inside a segment).
    pub fn of<'a>(templates: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut table = Self {
            templates: Vec::new(),
            by_count: Default::default(),
        };
        for template in templates {
            if table.templates.iter().any(|(known, _)| known == template) {
                continue;
            }
            let segments = template
                .strip_prefix('/')?
                .split('/')
                .map(|segment| match segment.strip_prefix('{') {
                    Some(name) => {
                        let name = name.strip_suffix('}')?;
                        let plain = !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        plain.then_some(Segment::Param)
                    }
                    None => (!segment.contains(['{', '}', '*']))
                        .then(|| Segment::Literal(segment.to_owned())),
                })
                .collect::<Option<Vec<_>>>()?;
            table
                .by_count
                .get_mut(segments.len())?
                .push(table.templates.len());
            table.templates.push((template.to_owned(), segments));
        }
        Some(table)
    }

    /// The template `path` (the request's raw path, without the query) matches.
    pub fn template_of(&self, path: &str) -> Option<&str> {
        let rest = path.strip_prefix('/')?.as_bytes();
        let mut parts: [&[u8]; MAX_SEGMENTS] = [&[]; MAX_SEGMENTS];
        let mut count = 0;
        let mut start = 0;
        for (at, byte) in rest.iter().enumerate() {
            if *byte == b'/' {
                // Longer than every template: nothing matches.
                *parts.get_mut(count)? = rest.get(start..at)?;
                count += 1;
                start = at + 1;
            }
        }
        *parts.get_mut(count)? = rest.get(start..)?;
        count += 1;
        let parts = &parts[..count];
        self.by_count
            .get(count)?
            .iter()
            .filter_map(|&index| self.templates.get(index))
            .find(|(_, segments)| matches(segments, parts))
            .map(|(template, _)| template.as_str())
    }

    /// The table of the application's route list (`http::routes`), built once; `None` when
    /// the list has a pattern this table does not decide.
    pub fn of_app() -> Option<&'static Self> {
        static TABLE: OnceLock<Option<RouteTable>> = OnceLock::new();
        TABLE
            .get_or_init(|| {
                let mut paths = Paths::default();
                super::routes(&mut paths);
                Self::of(paths.0.iter().map(String::as_str))
            })
            .as_ref()
    }
}

/// Whether the path's segments `parts` match the template's `segments`, one for one.
fn matches(segments: &[Segment], parts: &[&[u8]]) -> bool {
    segments.len() == parts.len()
        && segments
            .iter()
            .zip(parts)
            .all(|(segment, part)| match segment {
                Segment::Literal(literal) => literal.as_bytes() == *part,
                Segment::Param => !part.is_empty(),
            })
}

/// Collects the paths of a route list.
#[derive(Default)]
struct Paths(Vec<String>);

impl Routes for Paths {
    fn route<P, F, Args>(&mut self, _handler: F) -> &mut Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.0.push(P::path());
        self
    }
}

#[cfg(test)]
mod tests {
    use actix_web::dev::ResourceDef;

    use super::*;

    /// What actix's own route table says, the reference: the first template whose
    /// `ResourceDef` matches the path.
    fn actix_template<'a>(templates: &[&'a str], path: &str) -> Option<&'a str> {
        templates
            .iter()
            .find(|template| ResourceDef::new(**template).is_match(path))
            .copied()
    }

    #[test]
    fn the_app_table_finds_the_template_actix_finds_for_every_kind_of_path() {
        let mut paths = Paths::default();
        crate::http::routes(&mut paths);
        let templates: Vec<&str> = paths.0.iter().map(String::as_str).collect();
        let table = RouteTable::of_app().expect("the route list is literal and {param} only");
        let mut probes: Vec<String> = Vec::new();
        for template in &templates {
            probes.push((*template).to_owned());
            probes.push(template.replace("{id}", "home-page_1"));
            probes.push(template.replace("{id}", ""));
            probes.push(template.replace("{id}", "a%2Fb"));
            probes.push(template.replace("{id}", "a/b"));
            probes.push(format!("{template}/"));
            probes.push(format!("{template}x"));
            probes.push(template.trim_end_matches('/').to_owned());
        }
        probes.extend(
            [
                "",
                "/",
                "//",
                "/v1",
                "/v1/",
                "/nope",
                "/v1/experiments/x/assign/",
                "/v1/experiments/x/assign/a/b/c/d/e/f/g",
                "/a/b/c/d/e/f/g/h",
                "/a/b/c/d/e/f/g/h/i",
            ]
            .map(String::from),
        );
        for probe in &probes {
            assert_eq!(
                table.template_of(probe),
                actix_template(&templates, probe),
                "{probe:?}"
            );
        }
        assert_eq!(
            table.template_of("/v1/experiments/home/assign"),
            Some("/v1/experiments/{id}/assign")
        );
    }

    /// Whether some path matches both templates: as many segments, and at each place a
    /// parameter on either side or the same literal.
    fn overlap(a: &[Segment], b: &[Segment]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|pair| match pair {
                (Segment::Literal(a), Segment::Literal(b)) => a == b,
                _ => true,
            })
    }

    #[test]
    fn the_hot_routes_are_mounted_first_and_share_no_path_with_any_other_route() {
        let mut paths = Paths::default();
        crate::http::routes(&mut paths);
        let hot = ["/v1/assign", "/v1/experiments/{id}/assign", "/v1/events"];
        assert_eq!(paths.0[..hot.len()], hot);
        let table = RouteTable::of(paths.0.iter().map(String::as_str)).expect("literal list");
        for (template, segments) in &table.templates {
            for (other, other_segments) in &table.templates {
                if template != other && hot.contains(&template.as_str()) {
                    assert!(
                        !overlap(segments, other_segments),
                        "{template} and {other} match a path in common: their order matters"
                    );
                }
            }
        }
        // The check itself: a parameter overlaps any literal of its place.
        let pair = RouteTable::of(["/v1/experiments/{id}/assign", "/v1/experiments/x/{id}"])
            .expect("literal list");
        assert!(overlap(&pair.templates[0].1, &pair.templates[1].1));
        let pair = RouteTable::of(["/v1/experiments/{id}/assign", "/v1/experiments/{id}/report"])
            .expect("literal list");
        assert!(!overlap(&pair.templates[0].1, &pair.templates[1].1));
    }

    #[test]
    fn a_list_with_a_pattern_it_cannot_decide_has_no_table() {
        assert!(RouteTable::of(["/a/{id}", "/files/{tail}*"]).is_none());
        assert!(RouteTable::of(["/a/{id:\\d+}"]).is_none());
        assert!(RouteTable::of(["/a/x{id}"]).is_none());
        assert!(RouteTable::of(["relative"]).is_none());
        let longest = RouteTable::of(["/a/b/c/d/e/f/g/{id}"]).expect("eight segments fit");
        assert_eq!(
            longest.template_of("/a/b/c/d/e/f/g/h"),
            Some("/a/b/c/d/e/f/g/{id}")
        );
        assert_eq!(longest.template_of("/a/b/c/d/e/f/g/h/i"), None);
        assert_eq!(longest.template_of("/a/b/c/d/e/f/g"), None);
        assert!(RouteTable::of(["/a/b/c/d/e/f/g/h/{id}"]).is_none());
        assert!(RouteTable::of(["/a/{id}", "/b"]).is_some());
    }
}
