"""Fill a fake Confluence space with thousands of realistic pages, quickly and deterministically.

Pages form a tree under the space's home page (each page has up to ``fanout`` children, so 10,000
pages are about five levels deep). Bodies are storage-format XHTML in several languages with
headings, paragraphs, info/code/toc macros, page links and tables. Some subtrees are read-restricted
to a group (their descendants inherit the restriction through their ancestors, as in Confluence),
some pages carry attachments, and modification times are spread over the past year so CQL
``lastmodified`` windows select a predictable share.
"""
import random
from dataclasses import dataclass, field
from datetime import timedelta
from xml.sax.saxutils import escape

from tests.fakes.confluence_model import Content, Site, Space

WORDS = {
    "en": "release deployment server customer invoice policy holiday onboarding laptop password network "
          "backup database incident report budget meeting contract security training vacation printer".split(),
    "de": "Freigabe Bereitstellung Kunde Rechnung Richtlinie Urlaub Einarbeitung Kennwort Netzwerk Sicherung "
          "Datenbank Störung Bericht Haushalt Besprechung Vertrag Sicherheit Schulung Drucker Übersicht".split(),
    "fr": "déploiement serveur client facture politique congés intégration ordinateur réseau sauvegarde "
          "base incident rapport budget réunion contrat sécurité formation imprimante procédure".split(),
    "es": "despliegue servidor cliente factura política vacaciones incorporación contraseña red copia "
          "base incidente informe presupuesto reunión contrato seguridad formación impresora guía".split(),
    "pl": "wdrożenie serwer klient faktura polityka urlop wdrażanie hasło sieć kopia baza incydent "
          "raport budżet spotkanie umowa bezpieczeństwo szkolenie drukarka procedura".split(),
    "ja": "リリース サーバー 顧客 請求書 方針 休暇 研修 パスワード ネットワーク バックアップ "
          "データベース 障害 報告 予算 会議 契約 セキュリティ 手順 プリンター 概要".split(),
}
HEADINGS = {"en": ("Overview", "Details", "Next steps"), "de": ("Überblick", "Einzelheiten", "Nächste Schritte"),
            "fr": ("Aperçu", "Détails", "Étapes suivantes"), "es": ("Resumen", "Detalles", "Próximos pasos"),
            "pl": ("Przegląd", "Szczegóły", "Kolejne kroki"), "ja": ("概要", "詳細", "次の手順")}


@dataclass
class Populated:
    home: Content
    pages: list[Content]
    restricted_roots: list[Content] = field(default_factory=list)
    attachments: list[Content] = field(default_factory=list)
    blogposts: list[Content] = field(default_factory=list)


def _sentence(rng: random.Random, language: str) -> str:
    words = rng.choices(WORDS[language], k=rng.randint(6, 14))
    joiner = "" if language == "ja" else " "
    text = joiner.join(words)
    return text[0].upper() + text[1:] + ("。" if language == "ja" else ".")


def storage_body(rng: random.Random, title: str, language: str, link_to: str | None = None) -> str:
    """A storage-format page body: headings, paragraphs, macros, a table, a link."""
    overview, details, steps = HEADINGS[language]
    para = " ".join(_sentence(rng, language) for _ in range(3))
    rows = "".join(f"<tr><td>{escape(rng.choice(WORDS[language]))}</td><td>{rng.randint(1, 999)}</td></tr>" for _ in range(3))
    link = (f'<p><ac:link><ri:page ri:content-title="{escape(link_to, {chr(34): "&quot;"})}" /></ac:link></p>'
            if link_to else "")
    return (
        f'<h1>{escape(title)}</h1><ac:structured-macro ac:name="toc" ac:schema-version="1" />'
        f"<h2>{overview}</h2><p>{escape(para)}</p>"
        f'<ac:structured-macro ac:name="info" ac:schema-version="1"><ac:rich-text-body><p>{escape(_sentence(rng, language))}'
        f"</p></ac:rich-text-body></ac:structured-macro>"
        f"<h2>{details}</h2><table><tbody><tr><th>{escape(WORDS[language][0])}</th><th>#</th></tr>{rows}</tbody></table>"
        f'<ac:structured-macro ac:name="code" ac:schema-version="1"><ac:parameter ac:name="language">bash</ac:parameter>'
        f"<ac:plain-text-body><![CDATA[./deploy.sh --env prod --ticket {rng.randint(1000, 9999)}]]></ac:plain-text-body>"
        f"</ac:structured-macro><h3>{steps}</h3><ul><li>{escape(_sentence(rng, language))}</li></ul>{link}"
    )


def populate(site: Site, space: Space, n_pages: int, *, seed: int = 0, fanout: int = 8,
             restricted_group: str | None = None, restrict_every: int = 10, attachment_every: int = 50,
             n_blogposts: int = 0, languages: tuple[str, ...] = tuple(WORDS), spread_days: int = 365) -> Populated:
    """Add ``n_pages`` pages (the first is the home page) to ``space``.

    Every ``restrict_every``-th page at depth 2 is read-restricted to ``restricted_group`` (default
    ``<space key>-confidential``) with its whole subtree; every ``attachment_every``-th page gets a
    small text attachment. Modification times lie within ``spread_days`` before the clock's time.
    """
    rng = random.Random(seed)
    group = site.add_group(restricted_group or f"{space.key.lower()}-confidential")
    now = site.clock.now()
    pages: list[Content] = []
    result = None
    with site.lock:
        for index in range(n_pages):
            language = languages[index % len(languages)]
            title = f"{space.key} {index:05d} {rng.choice(WORDS[language])}"
            parent = pages[(index - 1) // fanout] if index else None
            created = now - timedelta(days=spread_days, minutes=rng.randint(0, 600))
            modified = now - timedelta(minutes=rng.randint(0, spread_days * 24 * 60))
            body = storage_body(rng, title, language, link_to=pages[-1].title if pages else None)
            page = site.add_page(space, title, body=body, parent=parent, when=created, version=rng.randint(1, 6))
            page.when = max(modified, created)
            pages.append(page)
        result = Populated(home=pages[0], pages=pages)
        depth_two = pages[1 + fanout: 1 + fanout + fanout * fanout]
        for position, root in enumerate(depth_two):
            if restrict_every and position % restrict_every == 0:
                site.restrict_read(root, groups=(group,))
                result.restricted_roots.append(root)
        for page in pages[::attachment_every] if attachment_every else []:
            data = f"{page.title}\n{_sentence(rng, 'en')}\n".encode()
            attachment = site.add_attachment(page, f"notes-{page.id}.txt", data, media_type="text/plain", when=page.when)
            result.attachments.append(attachment)
        for index in range(n_blogposts):
            language = languages[index % len(languages)]
            title = f"{space.key} news {index:04d}"
            when = now - timedelta(minutes=rng.randint(0, spread_days * 24 * 60))
            result.blogposts.append(site.add_blogpost(space, title, body=storage_body(rng, title, language), when=when))
        site.revision += 1
    return result
