with source as (
    select * from {{ source('raw', 'agent_documents') }}
),

final as (
    select
        doc_id,
        'agent' as category,
        subcategory,
        provider,
        api_ids,
        source_table,
        source_row_id,
        source_uri,
        text,
        coalesce(license, 'unknown') as license,
        is_seed,
        n_chars,
        sha256,
        list_contains({{ heldout_providers_list() }}, provider) as is_heldout
    from source
)

select * from final
