#!/usr/bin/env python3
"""The page of `vmunet serve --http` in a real headless browser (Debian's chromium through
chromium-driver, driven by selenium): choose a photo as a user would, wait for the overlay,
read what the page shows, and take a screenshot of the overlay for the Rust test to inspect.

Writes OUT/page.json (lesion text, canvas size, boundary pixels counted in the canvas, facts,
recent list, download names) and OUT/overlay.png (the canvas element's screenshot).

With WATCHED (a photo the watch-folder service beside the server segmented), also waits for
its line in the recent list (marked "watch folder") and downloads the mask it links to,
recording the line, the link's HTTP status, content type and PNG signature.

usage: page_check.py URL PHOTO OUT [WATCHED]
Exit 3 (and a SKIP line) when selenium or chromium is missing.
"""

import json
import os
import shutil
import sys

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:  # pragma: no cover
    print(f"SKIP: selenium is not installed ({e}); run through `make test`")
    sys.exit(3)


def main():
    url, photo, out = sys.argv[1:4]
    watched = sys.argv[4] if len(sys.argv) > 4 else None
    os.makedirs(out, exist_ok=True)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_bin = shutil.which("chromedriver")
    if not browser or not driver_bin:
        print("SKIP: chromium / chromium-driver are not installed (make browser)")
        sys.exit(3)
    opts = Options()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=driver_bin), options=opts)
    try:
        d.get(url)
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "model").get_attribute("value"))
        model = d.find_element(By.ID, "model").get_attribute("value")
        facts = d.find_element(By.ID, "model-facts").text
        chooser = d.find_element(By.ID, "file")
        d.execute_script("arguments[0].hidden = false", chooser)
        chooser.send_keys(os.path.abspath(photo))
        WebDriverWait(d, 120).until(
            lambda d: d.execute_script("return document.getElementById('view').dataset.ready") == "1"
            or d.find_element(By.ID, "error").text)
        error = d.find_element(By.ID, "error").text
        if error:
            print(f"the page shows an error: {error}")
            sys.exit(1)
        edge, w, h = d.execute_script(
            "const c = document.getElementById('view');"
            "const p = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < p.length; i += 4)"
            "  if (p[i] === 255 && p[i + 1] === 40 && p[i + 2] === 40) n++;"
            "return [n, c.width, c.height];")
        view = d.find_element(By.ID, "view")
        d.execute_script("arguments[0].scrollIntoView()", view)
        with open(os.path.join(out, "overlay.png"), "wb") as f:
            f.write(view.screenshot_as_png)
        WebDriverWait(d, 30).until(lambda d: os.path.basename(photo) in d.find_element(By.ID, "recent").text)
        result = {
            "model": model,
            "model_facts": facts,
            "area": d.find_element(By.ID, "area").text,
            "facts": d.find_element(By.ID, "facts").text,
            "canvas": [w, h],
            "edge_pixels": edge,
            "mask_download": d.find_element(By.ID, "dl-mask").get_attribute("download"),
            "record_download": d.find_element(By.ID, "dl-record").get_attribute("download"),
            "recent": d.find_element(By.ID, "recent").text,
        }
        if watched:
            line = f"{watched}: "
            WebDriverWait(d, 60).until(
                lambda d: any(line in li.text and "watch folder" in li.text
                              for li in d.find_elements(By.CSS_SELECTOR, "#recent li")))
            item = next(li for li in d.find_elements(By.CSS_SELECTOR, "#recent li")
                        if line in li.text and "watch folder" in li.text)
            href = item.find_element(By.TAG_NAME, "a").get_attribute("href")
            status, ctype, signature = d.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fetch(arguments[0]).then(async r => {"
                "  const b = new Uint8Array(await r.arrayBuffer());"
                "  done([r.status, r.headers.get('content-type'), Array.from(b.slice(0, 8))]);"
                "}).catch(e => done([0, String(e), []]));", href)
            result["watch_entry"] = item.text
            result["watch_mask"] = {"href": href, "status": status, "type": ctype,
                                    "png": signature == [137, 80, 78, 71, 13, 10, 26, 10]}
        with open(os.path.join(out, "page.json"), "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result, indent=2))
    finally:
        d.quit()


if __name__ == "__main__":
    main()
