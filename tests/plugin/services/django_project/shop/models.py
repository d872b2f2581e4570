"""The shop's one model."""

from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=50, unique=True)
