-- One row per distinct API operation: the rows of one operation (same operation_sha256: what a
-- model reads, version left out) are counted once, as their newest version; n_copies and
-- n_versions say how many rows and versions were merged, fct_duplicate_apis lists the others.
with ranked as (
    select * from {{ ref('int_ranked_api_operations') }}
),

final as (
    select
        api_id,
        source,
        provider,
        api_name,
        version,
        function_name,
        method,
        path,
        summary,
        description,
        parameters,
        responses,
        servers,
        security,
        defects,
        is_defective,
        n_params,
        license,
        source_uri,
        fetched_at,
        content_sha256,
        operation_sha256,
        n_copies,
        n_versions,
        versions,
        is_heldout
    from ranked
    where copy_rank = 1
)

select * from final
