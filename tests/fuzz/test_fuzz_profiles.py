"""Fuzzing profiles: wrong types, unknown keys, missing sections, in the YAML a user edits.

The property: ``load_settings`` returns a typed profile or raises ``ProfileError`` (whose message
names the file, the section and the key; ``FileNotFoundError`` listing the known profiles when
``extends`` names none) — never a pydantic, YAML or Python traceback of its own.

Found here: a profile that is not a mapping, an ``extends`` of the wrong type and an ``extends``
cycle raised AttributeError, TypeError and RecursionError.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.profile import ProfileError, load_settings
from tests.fuzz.fuzzing import bounded, examples

PROFILES = Path(__file__).resolve().parents[2] / "orchestration" / "profiles"
MICRO = yaml.safe_load((PROFILES / "micro.yaml").read_text())

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True), st.text(max_size=12),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)  # fmt: skip


@st.composite
def mutated_profiles(draw: st.DrawFn) -> object:
    data = yaml.safe_load(yaml.safe_dump(MICRO))
    for _ in range(draw(st.integers(1, 4))):
        node = data
        path = []
        while isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node, key=str)))
            path.append((node, key))
            node = node[key]
        if not path:
            data = draw(st.one_of(junk, st.just(data)))
            continue
        parent, key = path[-1]
        action = draw(st.integers(0, 2))
        if action == 0:
            parent[key] = draw(junk)  # a wrong type
        elif action == 1:
            del parent[key]  # a missing key or section
        else:
            parent[draw(st.text(min_size=1, max_size=10))] = draw(junk)  # an unknown key
    return data


@settings(max_examples=examples(20))
@given(mutated_profiles())
def test_a_broken_profile_is_a_profile_error(tmp_path_factory, data: object) -> None:
    path = tmp_path_factory.mktemp("profile") / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        bounded("profiles", load_settings, path)
    except ProfileError as exc:
        assert "fuzz.yaml" in str(exc) or "profiles/" in str(exc)
    except FileNotFoundError as exc:  # 'extends' names no profile: the message lists the known ones
        assert "known profiles" in str(exc)
