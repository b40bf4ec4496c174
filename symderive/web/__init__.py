"""``symderive serve``: a local web page where students check LaTeX answers and TAs read the key.

``pool``: the solved problems and the isolated checking processes; ``app``: the Starlette
application (pages and a small JSON API); ``render``: LaTeX to MathML for the browser.
"""
