{# Rows for which the invariant does not hold (dbt_utils' test, without the package download). #}
{% test expression_is_true(model, expression, column_name=none) %}
select * from {{ model }} where not ({{ expression }})
{% endtest %}
