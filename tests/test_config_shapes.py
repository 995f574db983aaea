"""Wrong shapes in ``leadbot.toml`` are refused with a ConfigError a person can act on.

Found by fuzzing (fuzz/corpus/config_parse/regress-*): a ``[[members]]`` entry without
``role``, ``members = 5``, ``regions = [1]`` and arrays nested ~1000 deep escaped as
TypeError / AttributeError / RecursionError — a traceback at start-up, or a reload that
silently kept the old rules. Each case here names the file, the line, the key and says
in Chinese what the value should look like.
"""

from __future__ import annotations

import pytest

from bot.config import ConfigError, parse
from tests.conftest import TEMPLATE

ORIGIN = "/etc/leadbot/leadbot.toml"
MEMBER = '[[members]]\nid = "wangfang"\nname = "王芳"\nrole = "rep"\nregion = "华东"\n'


def _refusal(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse(text, ORIGIN, env or {})
    return err.value


def test_a_member_without_role_is_a_rep() -> None:
    """The template documents role as optional (rep); it used to crash MemberConfig(**…)."""
    settings = parse(TEMPLATE + '\n[[members]]\nid = "xiaoli"\nname = "小李"\nregion = "华东"\n', ORIGIN, {})
    member = settings.member("xiaoli")
    assert member is not None and member.role == "rep" and member.region == "华东"


@pytest.mark.parametrize(
    ("text", "key", "zh", "line_has"),
    [
        ("members = 5\n", "members", "应为 [[members]] 表的列表（每项以 [[members]] 开头），而不是整数", "members = 5"),
        ('members = "张伟"\n', "members", "而不是文本", "members ="),
        ("[members]\nid = 1\n", "members", "应为 [[members]] 表的列表", "[members]"),
        ("regions = [1]\n", "regions[0]", "第1项却是整数", "regions = [1]"),
        ('members = [{id = "a", name = "A"}, "b"]\n', "members[1]", "第2项却是文本", "members ="),
        ('server = "0.0.0.0"\n', "server", "应为表 [server]，而不是文本", "server ="),
        ("database = [1]\n", "database", "应为表 [database]，而不是数组", "database ="),
        ("assignment = 5\n", "assignment", "应为表 [assignment]", "assignment ="),
        ("intake = 5\n", "intake", "应为表 [intake]", "intake ="),
        ("[intake]\nsources = 5\n", "intake.sources", "应为表 [intake.sources.ID]", "sources ="),
        ("[platforms]\nwecom = 5\n", "platforms.wecom", "应为表 [platforms.wecom]，而不是整数", "wecom = 5"),
        ("[database]\nurl = 5\n", "database.url", "数据库地址应为文本", "url = 5"),
        ("[server]\nport = true\n", "server.port", "端口必须是 0–65535 的整数", "port = true"),
        ("[server]\nsecret = 12345\n", "server.secret", "应为文本（加引号", "secret = 12345"),
        ('[[regions]]\nname = "华东"\nprovinces = "江苏"\n', "regions[0].provinces", "应为文本数组", "provinces ="),
        ('[[regions]]\nname = "华东"\nprovinces = ["江苏", 3]\n', "regions[0].provinces", "应为文本数组", "provinces ="),
        ('[[regions]]\nname = "华东"\nmanager = ["a"]\n', "regions[0].manager", "应为文本", "manager ="),
        (MEMBER + 'manager = ["chenjing"]\n', "members[0].manager", "应为文本（加引号", "manager ="),
        (MEMBER.replace('region = "华东"', 'region = ["华东"]'), "members[0].region", "而不是数组", "region ="),
        (MEMBER + 'active = "yes"\n', "members[0].active", "应为true 或 false", "active ="),
        (MEMBER + "wecom_userid = 1001\n", "members[0].wecom_userid", "而不是整数", "wecom_userid ="),
        (MEMBER + "daily_capacity = true\n", "members[0].daily_capacity", "每日额度必须是非负整数", "daily_capacity ="),
    ],
)
def test_a_wrong_shape_names_file_line_key_and_the_expected_shape(text: str, key: str, zh: str, line_has: str) -> None:
    # A member needs its region configured, so that only the mistake is wrong.
    base = '[[regions]]\nname = "华东"\nprovinces = ["上海"]\n' if text.startswith("[[members]]") else ""
    error = _refusal(base + text)
    message = str(error)
    assert ORIGIN in message and f"`{key}`" in message and zh in message, message
    assert "Traceback" not in message and error.en  # English beside the Chinese, for the log
    assert error.line is not None, message
    assert line_has in (base + text).splitlines()[error.line - 1], (error.line, message)


def test_an_environment_override_of_an_array_says_arrays_cannot_be_overridden() -> None:
    error = _refusal(TEMPLATE, {"LEADBOT_MEMBERS__ZHANGWEI__ROLE": "manager"})
    assert error.key == "members" and "数组不能用 LEADBOT_MEMBERS__… 环境变量覆盖" in error.zh


@pytest.mark.parametrize("opening", ["[", "{a = "])
def test_arrays_nested_a_thousand_deep_are_a_config_error_not_a_recursion_error(opening: str) -> None:
    text = 'title = "x"\n\nmatrix = ' + opening * 1000 + "\n"
    error = _refusal(text)
    assert error.line == 3 and "嵌套层数过多" in error.zh and "nested too deeply" in error.en
    # Nesting tomllib can read is no problem of ours: the ordinary validation answers.
    assert _refusal("regions = " + "[" * 50 + "]" * 50 + "\n").key == "regions[0]"


def test_the_template_still_loads_unchanged() -> None:
    settings = parse(TEMPLATE, ORIGIN, {})
    assert {m.role for m in settings.members} == {"admin", "manager", "rep"}
    assert [r.name for r in settings.regions] == ["华东", "华南", "华北"]
