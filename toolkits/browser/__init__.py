"""The ``browser`` toolkit: search, open and find, in the display gpt-oss was trained on.

Example::

    from toolkits.browser import BrowserConfig, BrowserToolkit

    async with BrowserToolkit(BrowserConfig(search="exa", open="http")) as browser:
        async with browser.session(ctx) as session:
            reply = await session.call(call)
        cited = session.cite(final_answer)   # 【3†L9-L11】 -> links and quoted lines

    # after an agent run: cite_run(result.final_answer, result.tool_calls)
"""

from __future__ import annotations

from toolkits.browser.citations import Citation as Citation
from toolkits.browser.citations import CitedText as CitedText
from toolkits.browser.citations import cite_run as cite_run
from toolkits.browser.citations import resolve_citations as resolve_citations
from toolkits.browser.config import ApiConfig as ApiConfig
from toolkits.browser.config import BrowserConfig as BrowserConfig
from toolkits.browser.config import PlaywrightConfig as PlaywrightConfig
from toolkits.browser.convert import html_to_page as html_to_page
from toolkits.browser.page import PageContents as PageContents
from toolkits.browser.session import BrowserSession as BrowserSession
from toolkits.browser.toolkit import BrowserToolkit as BrowserToolkit
from toolkits.browser.toolkit import browser_namespace as browser_namespace
