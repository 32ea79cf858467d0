/* tmpl_cases: the language cases of check_tmpl, one construct (or one Python corner) each:
 * template text, variables (JSON, or NULL), and the exact text jinja2 3.1 renders in the
 * transformers environment (trim_blocks, lstrip_blocks, loop controls, transformers' tojson).
 * Kept in a header of its own so the table reads as a specification. */
#ifndef LMPIPE_TESTS_TMPL_CASES_H
#define LMPIPE_TESTS_TMPL_CASES_H

#include <stddef.h>

struct tmpl_case {
    const char *tpl, *vars, *want;
};

#define V_MSGS                                                                                    \
    "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", "          \
    "\"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}], \"n\": 7, \"f\": 2.5, " \
    "\"s\": \"Hello, World\", \"xs\": [3, 1, 2], \"d\": {\"b\": 1, \"a\": [1, 2]}, \"no\": null, " \
    "\"t\": true, \"u\": \"h\\u00e9llo \\u4e2d\"}"

static const struct tmpl_case g_tmpl_cases[] = {
    /* ---- text, comments, whitespace control ---- */
    {"plain text", NULL, "plain text"},
    {"a{# comment #}b", NULL, "ab"},
    {"a\n", NULL, "a"}, /* one trailing newline dropped */
    {"a\n\n", NULL, "a\n"},
    {"a\r\nb\rc", NULL, "a\nb\nc"},
    {"a  {{- 'b' -}}  c", NULL, "abc"},
    {"a  {%- if true -%}  b  {%- endif %}\nc", NULL, "abc"},
    {"{% if true %}\nx\n{% endif %}\ny", NULL, "x\ny"},                     /* trim_blocks */
    {"  {% if true %}\n  x\n  {% endif %}\n  {{ 'y' }}", NULL, "  x\n  y"}, /* lstrip_blocks */
    {"z {%+ if true %}w{% endif %}", NULL, "z w"},
    {"{% if true +%}\nx{% endif %}", NULL, "\nx"},
    {"  {# c #}\nz", NULL, "z"},
    {"{{ 'a' }}\nb", NULL, "a\nb"}, /* no trimming after }} */
    {"{% raw %}\n{{ x }}{% endraw %}\nE", NULL, "\n{{ x }}E"},
    {"{%- raw -%} {{ y }} {%- endraw -%} !", NULL, "{{ y }}!"},
    {"\t{%- set x = 1 %}\n{{ x }}", NULL, "1"},
    {"a\u00a0{%- if true %}b{% endif %}", NULL, "ab"}, /* Unicode whitespace is stripped */
    /* ---- literals and printing ---- */
    {"{{ 'a\\x41\\u00e9\\n' }}{{ \"a\" \"b\" }}{{ 1_000 }}{{ 0x1f }}{{ 0b11 }}{{ 0o17 }}", NULL,
     "aA\xc3\xa9\nab1000313" "15"},
    {"{{ 1.5e3 }} {{ 1e16 }} {{ 1.5e-5 }} {{ 0.1 + 0.2 }} {{ 1e15 }} {{ 3.0 }} {{ -0.0 }}", NULL,
     "1500.0 1e+16 1.5e-05 0.30000000000000004 1000000000000000.0 3.0 -0.0"},
    {"{{ none }} {{ true }} {{ false }} {{ undefined_name }}|", NULL, "None True False |"},
    {"{{ [1, 'a', none, true, 1.0, {'k': 'v\"\\''}] }}", NULL,
     "[1, 'a', None, True, 1.0, {'k': 'v\"\\''}]"},
    {"{{ (1,) }}{{ () }}{{ (1, 2) }}{{ (\"it's\",) }}", NULL, "(1,)()(1, 2)(\"it's\",)"},
    {"{{ 'a\\tb\\x01\\u00a0\\u200b\\xe9' ~ '' }}{{ ['a\\tb\\x01\\u00a0\\u200b\\xe9'] }}", NULL,
     "a\tb\x01\xc2\xa0\xe2\x80\x8b\xc3\xa9['a\\tb\\x01\\xa0\\u200b\xc3\xa9']"},
    {"{{ 1, 2 }}", NULL, "(1, 2)"},
    {"{{ {'a': {'b': [1, (2, 3)]}} }}", NULL, "{'a': {'b': [1, (2, 3)]}}"},
    /* ---- arithmetic ---- */
    {"{{ 2**3**2 }} {{ -2**2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }}", NULL,
     "64 4 3 -4 2 -2"},
    {"{{ 7 / 2 }} {{ 6 / 2 }} {{ -7.5 // 2 }} {{ 7.5 % 2 }} {{ 1 / 3 }} {{ 10 ** -2 }}", NULL,
     "3.5 3.0 -4.0 1.5 0.3333333333333333 0.01"},
    {"{{ true + 1 }} {{ 3 * 'ab' }} {{ [1] * 2 }} {{ 'ab' * 0 }}| {{ 2 * 1.5 }} {{ -3|abs }}", NULL,
     "2 ababab [1, 1] | 3.0 3"},
    {"{{ 1 + 2 ~ 3 if false else 'x' }} {{ 1 ~ 2 + 3 ~ 4 if false else 5 ~ 6 }}", NULL, "x 56"},
    {"{{ 'a' + 'b' }}{{ [1] + [2] }}{{ (1,) + (2,) }}", NULL, "ab[1, 2](1, 2)"},
    {"{{ n * f }} {{ n // 2 }} {{ n is odd }} {{ f|int }} {{ -f|int }}", V_MSGS, "17.5 3 True 2 -2"},
    /* ---- comparisons, logic, truthiness ---- */
    {"{{ 1 == 1.0 }} {{ true == 1 }} {{ [1, 2] < [1, 3] }} {{ 'b' > 'a' }} {{ 1 < 2 < 3 }} "
     "{{ 3 > 2 > 2 }}",
     NULL, "True True True True True False"},
    {"{{ 'a' in 'cat' }} {{ 1 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} "
     "{{ 'x' in undefined_name }}",
     NULL, "True True True True False"},
    {"{{ 0 or 'b' }} {{ 'a' and 'b' }} {{ '' and 'b' }}| {{ none or [] }} {{ not [] }} "
     "{{ not 'x' }}",
     NULL, "b b | [] True False"},
    {"{% if [] or {} or '' or 0 or 0.0 or none %}T{% else %}F{% endif %}", NULL, "F"},
    {"{{ 'yes' if 1 else 'no' }}{{ 'a' if 0 }}|{{ ('a' if 0) is defined }}", NULL, "yes|False"},
    {"{{ undefined_name == undefined_name }} {{ undefined_name == none }}", NULL, "True False"},
    /* ---- attribute and item access ---- */
    {"{{ messages[0].role }} {{ messages[-1]['content'] }} {{ messages.1.role }}", V_MSGS,
     "system yo user"},
    {"{{ d.a }} {{ d['b'] }} {{ d.zz is defined }} {{ messages[9] is defined }} {{ no.x }}|",
     V_MSGS, "[1, 2] 1 False False |"},
    {"{{ d.items is defined }} {{ d['items'] is defined }} {{ (d|items|list)[0] }}",
     "{\"d\": {\"items\": 5}}", "True True ('items', 5)"},
    {"{{ d.get('a') }} {{ d.get('zz', 5) }} {{ d.get('zz') }} {{ d.keys()|list }} "
     "{{ d.values()|list }} {{ d.items() }}",
     "{\"d\": {\"a\": 1, \"b\": 2}}",
     "1 5 None ['a', 'b'] [1, 2] dict_items([('a', 1), ('b', 2)])"},
    {"{{ s[1:] }} {{ s[-1] }} {{ s[::2] }} {{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} "
     "{{ u[1:3] }} {{ s[100:] }}|",
     V_MSGS, "ello, World d Hlo ol [2, 1, 3] [1, 2] [3, 1] \xc3\xa9l |"},
    {"{{ s[0] }}{{ u[1] }}{{ u|length }}{{ u[-1] }}", V_MSGS, "H\xc3\xa9" "7\xe4\xb8\xad"},
    /* jinja2's optimizer folds constant slices with its forgiving getitem, and emits a folded
     * negative base as "-2 ** x", which Python reads as -(2 ** x) */
    {"{{ none[1:] }}|{{ 0.5[::2] }}|{{ {}[1:] }}|{{ [(1)[::2]] }}|{% set v = (1)[1:] ~ 'x' %}{{ v }}"
     "{% if (0.5)[1:] is defined %}D{% else %}U{% endif %}",
     V_MSGS, "|||[Undefined]|xU"},
    {"{{ (-2) ** (n + 1) }} {{ -2 ** 2 }} {% set m = -2 %}{{ m ** (n + 1) }} {{ -2.0 ** n }}", V_MSGS,
     "-256 4 256 -128.0"},
    /* ---- strings ---- */
    {"{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a\\n\\n'.rstrip('\\n') }}|",
     NULL, "a b|a|a|a|"},
    {"{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} "
     "{{ 'a b c'.rsplit(' ', 1) }} {{ '  a b  c '.split(none, 1) }}",
     NULL, "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['a b', 'c'] ['a', 'b  c ']"},
    {"{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} "
     "{{ 'Hello'.startswith('l', 2) }}",
     NULL, "True True True"},
    {"{{ 'hello world'.replace('o', '0') }} {{ 'aaa'.replace('a', 'b', 2) }} "
     "{{ 'ab'.replace('', '-') }}",
     NULL, "hell0 w0rld bba -a-b-"},
    {"{{ 'hELLO wORLD'.title() }} {{ 'hELLO'.capitalize() }} {{ 'Ab'.swapcase() }} "
     "{{ 'ab'.upper() }} {{ '\xc3\x89T\xc3\x89'.lower() }} {{ \"they're\".title() }}",
     NULL, "Hello World Hello aB AB \xc3\xa9t\xc3\xa9 They'Re"},
    {"{{ '{} and {}'.format(1, 'b') }} {{ '{1}{0}'.format('a', 'b') }} {{ '{x}!'.format(x=3) }} "
     "{{ '{:>5}|{:<4}|{:^7}|{:05d}|{:.2f}|{:,}'.format('ab', 'c', 'mid', 42, 3.14159, 1234567) }}",
     NULL, "1 and b ba 3!    ab|c   |  mid  |00042|3.14|1,234,567"},
    {"{{ '{{}} {0[0]} {0[k]} {1.role}'.format({'k': 'v', 0: 'z'}, messages[1]) }}", V_MSGS,
     "{} z v user"},
    {"{{ '%s-%d-%.2f-%5s-%-3s|%x' % ('a', 3, 2.5, 'r', 'l', 255) }} {{ '%(a)s' % {'a': 1} }} "
     "{{ '%s' % 'x' }} {{ '100%%' % () }}",
     NULL, "a-3-2.50-    r-l  |ff 1 x 100%"},
    {"{{ ', '.join(['a', 'b']) }} {{ 'abc'.find('c') }} {{ 'abc'.find('z') }} "
     "{{ 'aXbX'.rfind('X') }} {{ 'banana'.count('a') }} {{ 'a\\nb\\r\\nc'.splitlines() }}",
     NULL, "a, b 2 -1 3 3 ['a', 'b', 'c']"},
    {"{{ 'ab'.center(6, '*') }} {{ 'ab'.ljust(4) }}| {{ '42'.zfill(5) }} {{ '-4'.zfill(4) }} "
     "{{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }}",
     NULL, "**ab** ab  | 00042 -004 ('a', '=', 'b=c') ('a=b', '=', 'c')"},
    {"{{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' \\t'.isspace() }} {{ 'ab'.islower() }} "
     "{{ 'AB1'.isupper() }} {{ 'Ab Cd'.istitle() }} {{ 'hello'.removeprefix('he') }}",
     NULL, "True True True True True True llo"},
    /* ---- lists and dicts ---- */
    {"{% set l = [1] %}{% set _ = l.append(2) %}{% set _ = l.extend([3, 4]) %}{{ l }} "
     "{{ l.pop() }} {{ l.pop(0) }} {{ l }} {% set _ = l.insert(0, 9) %}{{ l }} {{ l.index(3) }} "
     "{{ l.count(2) }}",
     NULL, "[1, 2, 3, 4] 4 1 [2, 3] [9, 2, 3] 2 1"},
    {"{% set m = {'a': 1} %}{% set _ = m.update({'b': 2}) %}{{ m }} {{ m.pop('a') }} {{ m }} "
     "{{ m.setdefault('c', 3) }} {{ m|length }}",
     NULL, "{'a': 1, 'b': 2} 1 {'b': 2} 3 2"},
    {"{{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }} {{ [1, 2] == (1, 2) }} {{ {1: 'x'}[1] }} "
     "{{ {true: 'x'}[1] }}",
     NULL, "True False x x"},
    /* ---- tests ---- */
    {"{{ 1 is number }} {{ true is number }} {{ true is integer }} {{ 1.0 is float }} "
     "{{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is sequence }} "
     "{{ 'a' is iterable }} {{ 3 is iterable }} {{ undefined_name is sequence }}",
     NULL, "True True False True True True True True True False True"},
    {"{{ 6 is divisibleby 3 }} {{ 5 is even }} {{ x is defined }} {{ x is not defined }} "
     "{{ true is true }} {{ 1 is true }} {{ false is boolean }} {{ 'ab' is lower }} "
     "{{ 2 is in [1, 2] }} {{ 3 is gt 2 }} {{ 3 is lessthan 2 }} {{ none is sameas none }}",
     NULL, "True False False True True False True True True True False True"},
    {"{{ d is mapping }} {{ messages is iterable }} {{ 'upper' is filter }} {{ 'odd' is test }} "
     "{{ s.upper is callable }} {{ namespace() is mapping }}",
     V_MSGS, "True True True True True False"},
    /* ---- filters ---- */
    {"{{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'ab'|upper }}{{ 'AB'|lower }} "
     "{{ 'hello world'|title }} {{ 'hELLO'|capitalize }} {{ 'ab'|center(6) }}|",
     NULL, "a b|a|ABab Hello World Hello   ab  |"},
    {"{{ xs|length }} {{ xs|count }} {{ xs|first }} {{ xs|last }} {{ xs|min }} {{ xs|max }} "
     "{{ xs|sum }} {{ xs|sort }} {{ xs|sort(reverse=true) }} {{ xs|list }} {{ s|list|length }}",
     V_MSGS, "3 3 3 2 1 3 6 [1, 2, 3] [3, 2, 1] [3, 1, 2] 12"},
    {"{{ ['b', 'A', 'a']|sort }} {{ ['b', 'A', 'a']|sort(case_sensitive=true) }} "
     "{{ ['b', 'A', 'a', 'B']|unique|list }} {{ ['B', 'a']|min }} {{ [] |first is defined }}",
     NULL, "['A', 'a', 'b'] ['A', 'a', 'b'] ['b', 'A'] a False"},
    {"{{ {'b': 1, 'A': 2}|dictsort }} {{ {'b': 1, 'a': 2}|dictsort(by='value') }} "
     "{{ {'b': 1, 'a': 2}|dictsort(reverse=true) }}",
     NULL, "[('A', 2), ('b', 1)] [('b', 1), ('a', 2)] [('b', 1), ('a', 2)]"},
    {"{{ xs|join(', ') }} {{ xs|join }} {{ messages|join('|', attribute='role') }} "
     "{{ [none, 1]|join(',') }}",
     V_MSGS, "3, 1, 2 312 system|user|assistant None,1"},
    {"{{ messages|map(attribute='role')|list }} {{ xs|map('string')|map('length')|list }} "
     "{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|first }} "
     "{{ messages|rejectattr('role', 'in', ['user', 'system'])|list|length }}",
     V_MSGS, "['system', 'user', 'assistant'] [1, 1, 1] hi 1"},
    {"{{ xs|select('odd')|list }} {{ xs|reject('odd')|list }} {{ [0, 1, '', 'a']|select|list }} "
     "{{ messages|selectattr('name')|list }} {{ [{'a': {'b': 1}}]|map(attribute='a.b')|list }} "
     "{{ [{}]|map(attribute='z', default='D')|list }}",
     V_MSGS, "[3, 1] [2] [1, 'a'] [] [1] ['D']"},
    {"{{ undefined_name|default('d') }} {{ ''|default('e') }}|{{ ''|default('e', true) }} "
     "{{ none|default('n') }} {{ false|d('x', true) }}",
     NULL, "d |e None x"},
    {"{{ 3.7|int }} {{ '3.7'|int }} {{ '0x1A'|int(0, 16) }} {{ 'x'|int }} {{ 'x'|float }} "
     "{{ '1_000'|int }} {{ ' 42 '|int }} {{ true|int }} {{ '2.5'|float }} {{ 3|float }}",
     NULL, "3 3 26 0 0.0 1000 42 1 2.5 3.0"},
    {"{{ 2.5|round }} {{ 3.5|round }} {{ 2.567|round(2) }} {{ 2.5|round(0, 'floor') }} "
     "{{ 2.1|round(0, 'ceil') }} {{ 5|round }} {{ 2.675|round(2) }}",
     NULL, "2.0 4.0 2.57 2.0 3.0 5 2.67"},
    {"{{ 'a\\nb'|indent(2) }}|{{ 'a\\n\\nb'|indent(2, true, true) }}|{{ 'a\\nb\\n'|indent }}|"
     "{{ 'a\\nb'|indent('> ', first=true) }}",
     NULL, "a\n  b|  a\n  \n  b|a\n    b\n|> a\n> b"},
    {"{{ 'a b'|replace(' ', '_') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 1|string ~ 2 }} "
     "{{ [1, 2]|string }} {{ 'hello world foo'|truncate(9) }} {{ 'a b c'|wordcount }}",
     NULL, "a_b bba 12 [1, 2] hello... 3"},
    {"{{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3, 4, 5]|slice(2)|list }} "
     "{{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }} {{ {'a': 1}|list }} "
     "{{ [1, 2]|batch(3, 0)|list }}",
     NULL, "[[1, 2], [3, 4], [5]] [[1, 2, 3], [4, 5]] [3, 2, 1] cba ['a'] [[1, 2, 0]]"},
    {"{{ d|tojson }} {{ 'caf\\u00e9 <&>'|tojson }} {{ [1, 'a\\n', none, true, 1.5]|tojson }} "
     "{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }} {{ 'caf\\u00e9 \\U0001F600'|tojson(ensure_ascii=true) }}",
     V_MSGS,
     "{\"b\": 1, \"a\": [1, 2]} \"caf\xc3\xa9 <&>\" [1, \"a\\n\", null, true, 1.5] "
     "{\"a\": 2, \"b\": 1} \"caf\\u00e9 \\ud83d\\ude00\""},
    {"{{ d|tojson(indent=2) }}|{{ []|tojson(indent=2) }}|{{ {'a': {}}|tojson(indent=1) }}|"
     "{{ [1, 2]|tojson(separators=(',', ':')) }}",
     V_MSGS, "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2\n  ]\n}|[]|{\n \"a\": {}\n}|[1,2]"},
    {"{{ '<a>'|e }} {{ '<a>'|safe }} {{ ('<a>'|safe) + '<b>' }} {{ '<b>' + ('<a>'|safe) }} "
     "{{ ('<a>'|safe) ~ '<b>' }} {{ ('<a>'|safe).replace('a', '<') }} {{ '<a>'|e|e }}",
     NULL,
     "&lt;a&gt; <a> <a>&lt;b&gt; &lt;b&gt;<a> <a><b> <&lt;> &lt;a&gt;"},
    {"{{ xs|select('odd') is iterable }} {% if xs|select('gt', 100) %}T{% endif %} "
     "{{ (xs|reverse)[0] is defined }} {{ 'upper'|attr('x') is defined }} {{ s|attr('lower')() }}",
     V_MSGS, "True T False False hello, world"},
    {"{{ '%s and %s'|format('a', 'b') }} {{ '%(x)s'|format(x=1) }} {{ 'x'|center(4)|length }}",
     NULL, "a and b 1 4"},
    /* ---- statements ---- */
    {"{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
     "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
     V_MSGS, "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;"},
    {"{% for x in xs %}{{ loop.previtem }},{{ loop.nextitem }};{% endfor %}", V_MSGS, ",1;3,2;1,;"},
    {"{% for x in xs if x > 1 %}{{ x }}{{ loop.index }}/{{ loop.length }}{% else %}E{% endfor %}"
     "{% for x in [] %}a{% else %}E{% endfor %}",
     V_MSGS, "31/222/2E"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [[1, 2], [3, 4]] %}"
     "{{ a }}{{ b }}{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for c in 'ab' %}{{ c }}.{% endfor %}",
     V_MSGS, "b=1;a=[1, 2];1234baa.b."},
    {"{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}"
     "{% if x == 3 %}{% break %}{% endif %}{% endfor %}",
     NULL, "13"},
    {"{% for x in xs %}{{ loop.cycle('a', 'b') }}{% if loop.changed(x > 1) %}!{% endif %}{% endfor %}",
     V_MSGS, "a!b!a!"},
    {"{% for n in [{'v': 1, 'k': [{'v': 2}]}, {'v': 3}] recursive %}({{ n.v }}"
     "{% if n.k %}{{ loop(n.k) }}{% endif %}{{ loop.depth }}){% endfor %}",
     NULL, "(1(22)1)(31)"},
    {"{% for x in [1, 2] %}{% for y in 'ab' %}{{ loop.index }}{{ y }}{% endfor %}{{ loop.index }}|{% endfor %}",
     NULL, "1a2b1|1a2b2|"},
    {"{% if false %}a{% elif 0 %}b{% elif 'x' %}c{% else %}d{% endif %}", NULL, "c"},
    {"{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}", NULL, "2"},
    {"{% set x = 1 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i + 10 %}{{ x }}{% endfor %}{{ x }}",
     NULL, "[1]11[1]121"},
    {"{% for i in [1, 2] %}{% if i == 2 %}{{ y }}{% endif %}{% set y = i %}{% endfor %}|", NULL, "|"},
    {"{% set ns = namespace(a=1, l=[]) %}{% for i in [1, 2] %}{% set ns.a = ns.a + i %}"
     "{% set _ = ns.l.append(i) %}{% endfor %}{{ ns.a }} {{ ns.l }} {{ ns }}",
     NULL, "4 [1, 2] <Namespace {'a': 4, 'l': [1, 2]}>"},
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}", NULL, "12(1, 2)"},
    {"{% set x %}  a {{ 'b' }}  {% endset %}[{{ x }}]{% set y | upper | trim %} b {% endset %}[{{ y }}]",
     NULL, "[  a b  ][B]"},
    {"{% filter upper %}hi {{ 'x' }}{% endfilter %}{% filter replace('a', 'o') | title %}ab ab{% endfilter %}",
     NULL, "HI XOb Ob"},
    {"{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a is defined }}", NULL, "3False"},
    {"{% print 'a', 1 %}", NULL, "a1"},
    {"{% block b %}in block{% endblock %}|{% generation %}gen{% endgeneration %}", NULL, "in block|gen"},
    /* ---- macros and call ---- */
    {"{% macro m(a, b='x' ~ a) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 2) }}|{{ m(b=3, a=4) }}",
     NULL, "1x1|12|43"},
    {"{% macro m(a) %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}", NULL, "(2,){'k': 3}"},
    {"{% macro m(a, b) %}[{{ b is defined }}]{% endmacro %}{{ m(1) }}", NULL, "[False]"},
    {"{% macro m() %}{{ y }}{% endmacro %}{% set y = 5 %}{{ m() }}", NULL, "5"},
    {"{% macro m(a) %}<{{ caller(a) }}>{% endmacro %}{% call(x) m(5) %}got {{ x }}{% endcall %}",
     NULL, "<got 5>"},
    {"{% macro rec(n) %}{{ n }}{% if n > 0 %},{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(3) }}",
     NULL, "3,2,1,0"},
    {"{% macro m() %}a\n{% endmacro %}[{{ m() }}]{{ m is defined }}", NULL, "[a\n]True"},
    /* ---- globals ---- */
    {"{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }} {{ dict(a=1) }}",
     NULL, "[0, 1, 2] [1, 3, 5] [3, 2, 1] {'a': 1}"},
    {"{% set j = joiner('/') %}{% for x in 'abc' %}{{ j() }}{{ x }}{% endfor %}", NULL, "a/b/c"},
    {"{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y %H:%M:%S %A %j %p %I %y %e') }}|"
     "{{ strftime_now('%-d %-m %F %T %% %Q') }}",
     NULL, "26 Jul 2024|July 26, 2024 10:00:00 Friday 208 AM 10 24 26|26 7 2024-07-26 10:00:00 % %Q"},
};

#endif
