"""``manage.py search "<query>" --user <name>``: ranked results as that user sees them."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from kbsearch.index.ranking import MODES
from kbsearch.search.services import search_run
from kbsearch.text.query import InvalidQuery


class Command(BaseCommand):
    help = "Search the index as a user and print ranked results."

    def add_arguments(self, parser) -> None:
        parser.add_argument("query")
        parser.add_argument("--user", required=True, help="username to search as")
        parser.add_argument("--mode", choices=MODES, default="hybrid")
        parser.add_argument("--alpha", type=float, default=None)
        parser.add_argument("--limit", type=int, default=10)
        parser.add_argument("--language", action="append", help="keep to this language (repeatable)")
        parser.add_argument("--source", action="append", help="keep to this source key (repeatable)")
        parser.add_argument("--place", action="append",
                            help="keep to this place, <source key>:<place key> (repeatable; any of them)")

    def handle(self, *args, **options) -> None:
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {options['user']!r}") from None
        try:
            response = search_run(
                user=user,
                query=options["query"],
                mode=options["mode"],
                alpha=options["alpha"],
                limit=options["limit"],
                languages=frozenset(options["language"]) if options["language"] else None,
                source_keys=frozenset(options["source"]) if options["source"] else None,
                places=frozenset(options["place"]) if options["place"] else None,
            )
        except InvalidQuery as error:
            raise CommandError(str(error)) from None
        if not response.results:
            self.stdout.write(f"No results for {response.query!r} visible to {user.username}.")
            return
        for result in response.results:
            document = result.document
            snippet = " ".join(result.chunk.text.split())[:160]
            where = " · ".join(part for part in (document.source.key, document.place_label, document.language) if part)
            self.stdout.write(
                f"{result.rank:>3}. {document.title}  [{where}]  {result.score:.3f}\n"
                f"     {document.url}\n     {snippet}"
            )
        self.stdout.write(f"({len(response.results)} results in {response.took_ms:.0f} ms)")
