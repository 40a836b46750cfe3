"""Sample Markdown and HTML documents shared by the parser and chunking tests."""

MARKDOWN = """# Guide

Intro with **bold**, `code` and a [link](http://example.com).
A wrapped line.

## 安装

第一行
第二行

- one
- two
  - nested
1. first
2. second

| Name | Value |
|------|-------|
| a    | 1     |

```python
def f():
    return 1
```

> Quoted advice.

<div><h3>Raw HTML</h3><p>inside markdown</p></div>

![diagram](d.png)
"""


HTML = """<!DOCTYPE html><html><head><title>Page</title><style>p { color: red }</style></head>
<body><nav><a href="/">Home</a> | <a href="/x">Menu</a></nav>
<h1>Guide</h1>
<div>Loose <b>bold</b> text<p>First line<br>second line</p>tail</div>
<!-- a comment -->
<ul><li>one<ul><li>nested</li></ul></li><li>two</li></ul>
<ol><li>first</li><li>second</li></ol>
<pre>def f():
    return 1</pre>
<table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>
<script>var hidden = "never indexed";</script>
<h2>Next</h2><p>  spaced
   out  </p></body></html>"""
