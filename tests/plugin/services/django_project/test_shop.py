"""Django's own test classes and pytest-django's markers on the plugin's server."""

import pytest
from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase
from shop.models import Product


class CatalogueTests(TestCase):
    def test_the_migration_seeded_the_catalogue(self):
        assert list(Product.objects.values_list("name", flat=True)) == ["teapot"]

    def test_adding_a_product(self):
        Product.objects.create(name="kettle")
        assert Product.objects.count() == 2

    def test_the_added_product_is_gone(self):  # each TestCase test is rolled back
        assert not Product.objects.filter(name="kettle").exists()

    def test_the_test_database_is_the_runs(self):
        assert connection.settings_dict["NAME"].startswith("cr_")


class CommitTests(TransactionTestCase):
    serialized_rollback = True  # give the seeded row back after the flush

    def test_a_commit(self):
        with transaction.atomic():
            Product.objects.create(name="mug")
        assert Product.objects.filter(name="mug").exists()

    def test_the_commit_is_gone(self):
        assert not Product.objects.filter(name="mug").exists()
        assert Product.objects.filter(name="teapot").exists()


@pytest.mark.django_db
def test_on_the_plugins_server(postgres_server):
    assert connection.settings_dict["HOST"] == postgres_server.host
    assert connection.settings_dict["PORT"] == str(postgres_server.port)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        assert cursor.fetchone()[0] == connection.settings_dict["NAME"]


@pytest.mark.django_db(transaction=True)
def test_transactional_db_and_the_postgres_fixture_side_by_side(postgres):
    Product.objects.create(name="cup")
    with postgres.connect() as conn:  # a database of its own, not Django's
        assert conn.execute("SELECT to_regclass('shop_product')").fetchone() == (None,)
