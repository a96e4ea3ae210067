-- Every document that may enter the pre-training corpus, in one shape, with lineage.
-- Held-out providers' agent documents never get here (they feed the unseen-API benchmark).
with agent as (
    select * from {{ ref('stg_forge__agent_documents') }}
),

code as (
    select * from {{ ref('stg_forge__code_documents') }}
),

text as (
    select * from {{ ref('stg_forge__text_documents') }}
),

crawled as (
    select * from {{ ref('stg_forge__documents') }}
),

filtered_pages as (
    -- crawled pages a quality filter dropped (forge.text.filters.filter_crawled_pages)
    select distinct source_uri from {{ ref('stg_forge__dropped_rows') }}
    where asset = 'documents' and is_filter_drop
),

agent_candidates as (
    select
        doc_id, category, subcategory, text, n_chars, sha256, license, is_seed,
        source_table, source_row_id, source_uri, api_ids
    from agent
    where not is_heldout
),

crawled_candidates as (
    -- documentation pages are agent data (the paper's crawled tool documentation), not seed data
    select
        doc_id, category, subcategory, text, n_chars, sha256, 'unknown' as license, false as is_seed,
        'documents' as source_table, source_uri as source_row_id, source_uri,
        []::varchar[] as api_ids
    from crawled
    anti join filtered_pages using (source_uri)
),

general_candidates as (
    select
        doc_id, category, subcategory, text, n_chars, sha256, license, false as is_seed,
        category || '_documents' as source_table, doc_id as source_row_id, source_uri,
        []::varchar[] as api_ids
    from code
    union all
    select
        doc_id, category, subcategory, text, n_chars, sha256, license, false as is_seed,
        category || '_documents' as source_table, doc_id as source_row_id, source_uri,
        []::varchar[] as api_ids
    from text
),

final as (
    select * from agent_candidates
    union all
    select * from crawled_candidates
    union all
    select * from general_candidates
)

select * from final
